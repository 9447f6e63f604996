package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/walweave/walweave/internal/pgtest"
)

// ww runs the binary with extra environment and stdin; stdout is returned.
func ww(t *testing.T, env []string, stdin io.Reader, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr, cmd.Stdin = &so, &se, stdin
	cmd.Env = append(os.Environ(), "PGPASSWORD=", "PGPASSFILE=/nonexistent", "PGCONNECT_TIMEOUT=5")
	cmd.Env = append(cmd.Env, env...)
	err := cmd.Run()
	code = cmd.ProcessState.ExitCode()
	if err != nil && code < 0 {
		t.Fatalf("run walweave: %v", err)
	}
	return so.String(), se.String(), code
}

func oneLineErr(t *testing.T, stderr string) {
	t.Helper()
	if strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
		t.Fatalf("more than one line on stderr: %q", stderr)
	}
}

// -o naming a directory (or ending in /) is refused before connecting (the
// unreachable server is never tried), and a stale PATH.tmp says what to do.
func TestOutputPathRefused(t *testing.T) {
	dir := t.TempDir()
	nowhere := "host=127.0.0.1 port=1 user=x"
	for _, o := range []string{dir, dir + "/", filepath.Join(dir, "new") + "/"} {
		_, stderr, code := ww(t, nil, nil, "backup", "-d", nowhere, "-o", o)
		if code != 2 || !strings.Contains(stderr, "-o ") || strings.Contains(stderr, "connect") {
			t.Fatalf("-o %s: exit %d, %q; want exit 2 before connecting", o, code, stderr)
		}
		oneLineErr(t, stderr)
	}
	if _, err := os.Stat(dir + ".tmp"); !os.IsNotExist(err) {
		t.Fatalf("%s.tmp created", dir)
	}
	out := filepath.Join(dir, "b.tar")
	if err := os.WriteFile(out+".tmp", []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := ww(t, nil, nil, "backup", "-d", nowhere, "-o", out)
	if code != 1 || !strings.Contains(stderr, "remove "+out+".tmp") || strings.Contains(stderr, "connect") {
		t.Fatalf("stale tmp: exit %d, %q", code, stderr)
	}
}

// pg_basebackup habits. Accepted no-ops reach the connection (exit 1: nothing
// listens); the others get one line; --help goes to stdout; unknown flags are one line.
func TestPgBasebackupHabits(t *testing.T) {
	nowhere := "host=127.0.0.1 port=1 user=x"
	for _, args := range [][]string{
		{"-D", "-", "-Ft", "-X", "stream"}, {"-D-", "-Ft", "-Xfetch", "-w"}, {"--pgdata=-", "--format=tar", "--wal-method=stream"},
		{"-F", "t", "-X", "s"},
	} {
		_, stderr, code := ww(t, nil, nil, append([]string{"backup", "-d", nowhere}, args...)...)
		if code != 1 || !strings.Contains(stderr, "cannot connect") {
			t.Fatalf("%v: exit %d, %q; want them accepted", args, code, stderr)
		}
	}
	for flag, want := range map[string]string{"-z": "compressor", "-Z9": "compressor", "-W": "PGPASSWORD", "-T/a=/b": "walweave restore",
		"--no-manifest": "manifest", "-tserver:/x": "stdout", "-Fp": "tar only", "-D/tmp/x": "walweave restore -D", "-Xnone": "always streams"} {
		_, stderr, code := ww(t, nil, nil, "backup", "-d", nowhere, flag)
		if code != 2 || !strings.Contains(stderr, want) {
			t.Fatalf("%s: exit %d, %q; want exit 2 mentioning %q", flag, code, stderr, want)
		}
		oneLineErr(t, stderr)
	}
	for _, cmd := range []string{"backup", "verify", "restore"} {
		stdout, stderr, code := ww(t, nil, nil, cmd, "--help")
		if code != 0 || !strings.Contains(stdout, "Usage: walweave "+cmd) || !strings.Contains(stdout, "-verbose") || stderr != "" {
			t.Fatalf("%s --help: exit %d, stdout %q, stderr %q", cmd, code, stdout, stderr)
		}
		_, stderr, code = ww(t, nil, nil, cmd, "--frobnicate")
		if code != 2 || !strings.Contains(stderr, "--help") {
			t.Fatalf("%s --frobnicate: exit %d, %q", cmd, code, stderr)
		}
		oneLineErr(t, stderr)
	}
	if stdout, _, code := ww(t, nil, nil, "--help"); code != 0 || !strings.Contains(stdout, "Usage:") {
		t.Fatalf("walweave --help: exit %d", code)
	}
}

// An invalid recovery target time is refused before anything is done.
func TestTargetTimeRefused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "r")
	for _, v := range []string{"yesterday", "now", "2024-13-01 00:00:00+00", "next tuesday", "2024-02-30"} {
		_, stderr, code := ww(t, nil, strings.NewReader(""), "restore", "-D", dir, "--recovery", "--target-time", v)
		if code != 2 || !strings.Contains(stderr, "target time") {
			t.Fatalf("--target-time %q: exit %d, %q", v, code, stderr)
		}
		oneLineErr(t, stderr)
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Fatalf("--target-time %q: %s created", v, dir)
		}
	}
}

// A terminal stdin is refused, not waited on forever.
func TestTerminalStdinRefused(t *testing.T) {
	script, err := exec.LookPath("script")
	if err != nil {
		t.Fatalf("util-linux script is needed: %v", err)
	}
	for _, cmd := range []string{"verify", "restore -D " + filepath.Join(t.TempDir(), "r")} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		out, _ := exec.CommandContext(ctx, script, "-qec", binary+" "+cmd, "/dev/null").CombinedOutput()
		cancel()
		if !strings.Contains(string(out), "refusing to read a backup stream from a terminal") {
			t.Fatalf("%s: got %q", cmd, out)
		}
	}
}

// TestOperatorServer covers the operator-facing behaviours that need a server, on one
// cluster: .pgpass, SHA checksums of a FILE, compressed input, flags after the file, restore's
// owner, a reader closing stdout.
func TestOperatorServer(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{})
	c.PgbenchInit(t, 1)
	plainDSN := "host=127.0.0.1 port=" + strconv.Itoa(c.Port) // no sslmode: prefer, as users have it

	// Each connection error once, no TLS noise, what to do, and no password
	// ever printed, nor any text mangled by redaction (passwords "e" and "x").
	t.Run("connection errors", func(t *testing.T) {
		for _, tc := range []struct {
			name, dsn string
			want      []string
		}{
			{"wrong password", plainDSN + " user=walweave password=e", []string{"password authentication failed", "28P01", "is wrong"}},
			{"wrong password x", plainDSN + " user=walweave password=x", []string{"password authentication failed", "is wrong"}},
			{"no password", plainDSN + " user=walweave", []string{"28P01", "no password was given", "replication"}},
			{"no REPLICATION", plainDSN + " user=" + pgtest.NoReplicationUser + " password=" + c.ReplPassword, []string{"42501", "REPLICATION"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, stderr, code := ww(t, nil, nil, "backup", "-d", tc.dsn, "-o", filepath.Join(t.TempDir(), "b.tar"))
				if code != 1 {
					t.Fatalf("exit %d: %q", code, stderr)
				}
				oneLineErr(t, stderr)
				for _, w := range tc.want {
					if !strings.Contains(stderr, w) {
						t.Fatalf("stderr lacks %q: %q", w, stderr)
					}
				}
				if strings.Contains(stderr, "tls error") || strings.Count(stderr, "SQLSTATE") != 1 {
					t.Fatalf("not once, or TLS noise: %q", stderr)
				}
				if strings.Contains(stderr, "*") || strings.Contains(stderr, c.ReplPassword) || strings.Contains(stderr, "password=e") || strings.Contains(stderr, "password=x") {
					t.Fatalf("password shown or text redacted: %q", stderr)
				}
			})
		}
		// An invalid connection string is echoed without its password.
		_, stderr, code := ww(t, nil, nil, "backup", "-d", "host=127.0.0.1 password=sekrit-pw port=notaport")
		if code != 2 || strings.Contains(stderr, "sekrit") || !strings.Contains(stderr, "port") {
			t.Fatalf("invalid connection string: exit %d, %q", code, stderr)
		}
	})

	// A .pgpass line for the replication pseudo-database is used.
	t.Run("pgpass replication line", func(t *testing.T) {
		pass := filepath.Join(t.TempDir(), "pgpass")
		line := "127.0.0.1:" + strconv.Itoa(c.Port) + ":replication:" + pgtest.ReplicationUser + ":" + c.ReplPassword + "\n"
		if err := os.WriteFile(pass, []byte(line), 0o600); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(t.TempDir(), "b.tar")
		_, stderr, code := ww(t, []string{"PGPASSFILE=" + pass}, nil, "backup", "-d", plainDSN+" user="+pgtest.ReplicationUser+" sslmode=disable", "-c", "fast", "-o", out)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
	})

	// One backup with SHA256 manifest checksums for what follows.
	dir := t.TempDir()
	tarPath := filepath.Join(dir, "b.tar")
	if _, stderr, code := ww(t, nil, nil, "backup", "-d", c.DSN(), "-c", "fast", "--manifest-checksums", "SHA256", "-o", tarPath); code != 0 {
		t.Fatalf("backup: exit %d: %s", code, stderr)
	}
	compressed := map[string]string{}
	for tool, ext := range map[string]string{"zstd": ".zst", "gzip": ".gz", "lz4": ".lz4", "xz": ".xz"} {
		p := tarPath + ext
		if out, err := exec.Command("sh", "-c", tool+" -c < "+tarPath+" > "+p).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v %s", tool, err, out)
		}
		compressed[tool] = p
	}

	// A FILE is fully verified (SHA checksums too, by a second read), also when
	// compressed; a pipe that cannot verify them does not exit 0 unless asked to.
	t.Run("SHA manifest", func(t *testing.T) {
		for _, f := range []string{tarPath, compressed["zstd"], compressed["gzip"], compressed["lz4"]} {
			stdout, stderr, code := ww(t, nil, nil, "verify", f)
			if code != 0 || strings.Contains(stdout, "0 SHA256 checksums verified") || !strings.Contains(stdout, "SHA256 checksums verified") || strings.Contains(stdout, "NOT verified") {
				t.Fatalf("verify %s: exit %d: %s %s", filepath.Base(f), code, stdout, stderr)
			}
		}
		pipe := func() io.Reader { f, _ := os.ReadFile(tarPath); return struct{ io.Reader }{bytes.NewReader(f)} }
		stdout, stderr, code := ww(t, nil, pipe(), "verify")
		if code != 1 || !strings.Contains(stderr, "NOT verified") || !strings.Contains(stderr, "--allow-unverified") {
			t.Fatalf("pipe: exit %d: %s %s", code, stdout, stderr)
		}
		oneLineErr(t, stderr)
		if _, stderr, code := ww(t, nil, pipe(), "verify", "--allow-unverified"); code != 0 {
			t.Fatalf("pipe --allow-unverified: exit %d: %s", code, stderr)
		}
		if stdout, stderr, code := ww(t, nil, pipe(), "verify", "--checksum-algorithm", "SHA256"); code != 0 || strings.Contains(stdout, "NOT verified") {
			t.Fatalf("pipe with the algorithm: exit %d: %s %s", code, stdout, stderr)
		}
	})

	// Compressed input by magic, from a file and from a pipe; other formats named.
	t.Run("compressed input", func(t *testing.T) {
		for _, tool := range []string{"zstd", "gzip", "lz4"} {
			f, err := os.Open(compressed[tool])
			if err != nil {
				t.Fatal(err)
			}
			_, stderr, code := ww(t, nil, struct{ io.Reader }{f}, "verify", "--checksum-algorithm", "SHA256", "-q")
			f.Close()
			if code != 0 {
				t.Fatalf("%s from a pipe: exit %d: %s", tool, code, stderr)
			}
		}
		_, stderr, code := ww(t, nil, nil, "verify", compressed["xz"])
		if code != 2 || !strings.Contains(stderr, "xz-compressed") || !strings.Contains(stderr, "xz -dc") {
			t.Fatalf("xz: exit %d: %q", code, stderr)
		}
		r := filepath.Join(t.TempDir(), "r")
		if _, stderr, code := ww(t, nil, nil, "restore", "-D", r, compressed["zstd"]); code != 0 {
			t.Fatalf("restore from zstd: exit %d: %s", code, stderr)
		}
	})

	// Flags after the file argument.
	t.Run("flags anywhere", func(t *testing.T) {
		stdout, stderr, code := ww(t, nil, nil, "verify", tarPath, "-q")
		if code != 0 || stdout != "" {
			t.Fatalf("verify FILE -q: exit %d, stdout %q, stderr %q", code, stdout, stderr)
		}
		r := filepath.Join(t.TempDir(), "r")
		if _, stderr, code := ww(t, nil, nil, "restore", tarPath, "-D", r, "--no-sync"); code != 0 {
			t.Fatalf("restore FILE -D DIR: exit %d: %s", code, stderr)
		}
		if _, err := os.Stat(filepath.Join(r, "PG_VERSION")); err != nil {
			t.Fatal(err)
		}
	})

	// As root, restore gives the files to the stream's owner (or the target
	// directory's, or --owner), says so, and PostgreSQL starts on them as postgres.
	t.Run("restore owner", func(t *testing.T) {
		requireRoot(t, "the ownership rules apply to a restore run as root")
		pg, err := user.Lookup("postgres")
		if err != nil {
			t.Fatal(err)
		}
		uid, _ := strconv.Atoi(pg.Uid)
		// A root-owned directory the server user can traverse: the stream's owner is used.
		base, err := os.MkdirTemp("", "walweave-owner-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(base) })
		if err := os.Chmod(base, 0o755); err != nil {
			t.Fatal(err)
		}
		data := filepath.Join(base, "data")
		_, stderr, code := ww(t, nil, nil, "restore", "-D", data, tarPath)
		if code != 0 || !strings.Contains(stderr, "files owned by postgres:") || !strings.Contains(stderr, "recorded in the stream") {
			t.Fatalf("restore: exit %d: %q", code, stderr)
		}
		checkOwner(t, data, uid)
		// PostgreSQL, run as postgres with no chown, starts on it.
		sock := filepath.Join(base, "sock")
		if err := os.Mkdir(sock, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := pgtest.Chown(sock); err != nil {
			t.Fatal(err)
		}
		port := strconv.Itoa(c.Port + 1000)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		logf := filepath.Join(sock, "log")
		if out, err := c.Run(ctx, "pg_ctl", "-D", data, "-w", "-t", "60", "-l", logf, "-o", "-p "+port+" -k "+sock+" -c listen_addresses=", "start"); err != nil {
			b, _ := os.ReadFile(logf)
			t.Fatalf("pg_ctl start as postgres: %v %s\n%s", err, out, b)
		}
		if out, err := c.Run(ctx, "pg_ctl", "-D", data, "-w", "-m", "fast", "stop"); err != nil {
			t.Fatalf("pg_ctl stop: %v %s", err, out)
		}

		// --owner chooses; the target directory's owner comes before the stream's.
		data2 := filepath.Join(t.TempDir(), "d2")
		if _, stderr, code := ww(t, nil, nil, "restore", tarPath, "-D", data2, "--no-sync", "--owner", "nobody"); code != 0 || !strings.Contains(stderr, "from --owner") {
			t.Fatalf("--owner nobody: exit %d: %q", code, stderr)
		}
		nobody, _ := user.Lookup("nobody")
		nuid, _ := strconv.Atoi(nobody.Uid)
		checkOwner(t, data2, nuid)
		data3 := filepath.Join(t.TempDir(), "d3")
		if err := os.Mkdir(data3, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(data3, nuid, nuid); err != nil {
			t.Fatal(err)
		}
		if _, stderr, code := ww(t, nil, nil, "restore", tarPath, "-D", data3, "--no-sync"); code != 0 || !strings.Contains(stderr, "the owner of "+data3) {
			t.Fatalf("owned target: exit %d: %q", code, stderr)
		}
		checkOwner(t, data3, nuid)
	})

	// A reader that closes stdout (| head) gets exit 1 and one line naming it;
	// SIGINT while writing to a pipe says the stream written is incomplete.
	t.Run("closed stdout", func(t *testing.T) {
		cmd := exec.Command(binary, "backup", "-d", c.DSN(), "-c", "fast")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(out, make([]byte, 4096)); err != nil {
			t.Fatal(err)
		}
		out.Close()
		_ = cmd.Wait()
		code := cmd.ProcessState.ExitCode()
		if code != 1 || !strings.Contains(stderr.String(), "closed by its reader") {
			t.Fatalf("exit %d (%v), %q", code, cmd.ProcessState, stderr.String())
		}
		oneLineErr(t, stderr.String())
	})
	t.Run("SIGINT into a pipe", func(t *testing.T) {
		cmd := exec.Command(binary, "backup", "-d", c.DSN(), "-c", "fast", "-r", "1M")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(out, make([]byte, 64<<10)); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Process.Signal(syscall.SIGINT)
		_, _ = io.Copy(io.Discard, out)
		_ = cmd.Wait()
		if code := cmd.ProcessState.ExitCode(); code != 130 || !strings.Contains(stderr.String(), "incomplete, unfinished stream") || strings.Contains(stderr.String(), "nothing was kept") {
			t.Fatalf("exit %d, %q", code, stderr.String())
		}
	})
}

func checkOwner(t *testing.T, dir string, uid int) {
	t.Helper()
	n := 0
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		n++
		if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != uid {
			t.Fatalf("%s is owned by uid %d, want %d", p, st.Uid, uid)
		}
		return nil
	})
	if err != nil || n < 10 {
		t.Fatalf("walk %s: %v (%d entries)", dir, err, n)
	}
}

// A server with one walsender: the second connection is refused with 53300 and the
// message says walweave needs two.
func TestTooFewWalsenders(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{Settings: map[string]string{"max_wal_senders": "1"}})
	_, stderr, code := ww(t, nil, nil, "backup", "-d", c.DSN(), "-c", "fast", "-o", filepath.Join(t.TempDir(), "b.tar"))
	if code != 1 || !strings.Contains(stderr, "53300") || !strings.Contains(stderr, "two free walsenders") {
		t.Fatalf("exit %d: %q", code, stderr)
	}
	oneLineErr(t, stderr)
}
