package main

import (
	"bytes"
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/walweave/walweave/internal/pgtest"
)

var binary string

func TestMain(m *testing.M) {
	flag.Parse()
	if *updateDocs { // make docs: only the reference, no binary needed
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "walweave-bin-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "walweave")
	if out, err := exec.Command("go", "build", "-race", "-o", binary, ".").CombinedOutput(); err != nil {
		os.Stderr.Write(out)
		os.Exit(1)
	}
	// The binary must be runnable by the unprivileged server user too.
	_ = os.Chmod(dir, 0o755)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// walweave runs the built binary; stdout goes to the returned buffer (or to a file when out
// is set).
func walweave(t *testing.T, ctx context.Context, out *os.File, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.CommandContext(ctx, binary, args...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	if out != nil {
		cmd.Stdout = out
	}
	cmd.Env = append(os.Environ(), "PGPASSWORD=", "PGCONNECT_TIMEOUT=5")
	err := cmd.Run()
	code = cmd.ProcessState.ExitCode()
	if err != nil && code < 0 {
		t.Fatalf("run walweave: %v", err)
	}
	return so.String(), se.String(), code
}

func TestBackupToStdoutRestores(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{})
	c.PgbenchInit(t, 2)
	load := c.StartLoad(t, 2)
	path := filepath.Join(t.TempDir(), "base.tar")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	_, stderr, code := walweave(t, context.Background(), f, "backup", "-d", c.DSN(), "-c", "fast", "-P")
	f.Close()
	_ = load.Stop()
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "walweave:") || !strings.Contains(stderr, "WAL segments") {
		t.Fatalf("progress lines missing on stderr: %q", stderr)
	}
	c.RestoreDrill(t, path, pgtest.Drill{Pgbench: true})
}

func TestOutputFileAndFailure(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{})
	dir := t.TempDir()
	out := filepath.Join(dir, "b.tar")
	if _, stderr, code := walweave(t, context.Background(), nil, "backup", "-d", c.DSN(), "-c", "fast", "-o", out); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if _, err := os.Stat(out + ".tmp"); !os.IsNotExist(err) {
		t.Fatalf("temporary file left: %v", err)
	}
	list := pgtest.ListTar(t, out)
	if list[len(list)-1].Name != "backup_manifest" {
		t.Fatal("manifest is not last")
	}

	// A failing backup leaves no file: the walsender is terminated mid-way (slowed by --max-rate).
	failed := filepath.Join(dir, "failed.tar")
	c.PgbenchInit(t, 2)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 300; i++ {
			if v, _ := c.QueryValueDB(context.Background(), "postgres", "select count(pg_terminate_backend(pid)) from pg_stat_replication where state = 'backup'"); v != "0" && v != "" {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	_, stderr, code := walweave(t, context.Background(), nil, "backup", "-d", c.DSN(), "-c", "fast", "-r", "1M", "-o", failed)
	<-done
	if code != 1 || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
		t.Fatalf("want exit 1 with one line, got %d: %q", code, stderr)
	}
	for _, p := range []string{failed, failed + ".tmp"} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Fatalf("%s exists after a failed backup", p)
		}
	}
}

func TestCompressLZ4(t *testing.T) {
	if _, err := exec.LookPath("lz4"); err != nil {
		t.Fatalf("the lz4 command is needed (scripts/setup.sh installs it): %v", err)
	}
	c := pgtest.Start(t, pgtest.Options{})
	c.SkipWithoutServerLZ4(t)
	c.PgbenchInit(t, 1)
	dir := t.TempDir()
	out := filepath.Join(dir, "b.tar.lz4")
	// lz4 both ways: the server compresses what it sends, walweave what it writes.
	_, stderr, code := walweave(t, context.Background(), nil, "backup", "-d", c.DSN(), "-c", "fast", "--server-compress", "lz4", "--compress", "lz4", "-o", out, "-v")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "archives received lz4-compressed") {
		t.Fatalf("the summary line does not show the compressed traffic: %q", stderr)
	}
	plain := filepath.Join(dir, "b.tar")
	if o, err := exec.Command("lz4", "-d", "-q", out, plain).CombinedOutput(); err != nil {
		t.Fatalf("lz4 -d: %v %s", err, o)
	}
	// walweave verify reads lz4 streams: its own, and the lz4 command's linked blocks.
	linked := filepath.Join(dir, "linked.tar.lz4")
	if o, err := exec.Command("lz4", "-q", "-BD", "-B5", plain, linked).CombinedOutput(); err != nil {
		t.Fatalf("lz4 -BD: %v %s", err, o)
	}
	for _, f := range []string{out, linked} {
		if _, stderr, code := walweave(t, context.Background(), nil, "verify", f); code != 0 {
			t.Fatalf("walweave verify %s: exit %d: %s", filepath.Base(f), code, stderr)
		}
	}
	c.RestoreDrill(t, plain, pgtest.Drill{Pgbench: true})
}

func TestWriteRecoveryConf(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{})
	out := filepath.Join(t.TempDir(), "b.tar")
	if _, stderr, code := walweave(t, context.Background(), nil, "backup", "-d", c.DSN(), "-c", "fast", "-R", "--recovery-conf-password", "-o", out); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	c.RestoreDrill(t, out, pgtest.Drill{Queries: map[string]string{
		"select pg_is_in_recovery()": "true",
	}})
}

func TestErrorsAreOneLine(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{})
	wrongPw := strings.Replace(c.DSN(), c.ReplPassword, "sekrit-wrong-pw", 1)
	noRepl := strings.Replace(c.DSN(), "user="+pgtest.ReplicationUser, "user="+pgtest.NoReplicationUser, 1)
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"wrong password", []string{"backup", "-d", wrongPw}, 1, "password authentication failed"},
		// 15: "must be superuser or replication role to start walsender"; 16+: "permission
		// denied to start WAL sender", the role attribute in DETAIL: match what both say.
		{"no REPLICATION", []string{"backup", "-d", noRepl}, 1, `(?i)wal ?sender`},
		{"unreachable", []string{"backup", "-d", "host=127.0.0.1 port=1 user=x"}, 1, "connect"},
		{"bad flag", []string{"backup", "--checkpoint", "slow"}, 2, "checkpoint"},
		{"bad rate", []string{"backup", "-r", "1"}, 2, "rate"},
		{"bad server compression", []string{"backup", "--server-compress", "gzip"}, 2, "not gzip"},
		{"unknown command", []string{"frobnicate"}, 2, "unknown command"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "x.tar")
			_, stderr, code := walweave(t, context.Background(), nil, append(tc.args, "-o", out)...)
			if tc.name == "unknown command" {
				_, stderr, code = walweave(t, context.Background(), nil, tc.args...)
			}
			if code != tc.code || !regexp.MustCompile(tc.want).MatchString(stderr) {
				t.Fatalf("exit %d, stderr %q; want exit %d mentioning %q", code, stderr, tc.code, tc.want)
			}
			if tc.code == 1 && strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
				t.Fatalf("more than one line: %q", stderr)
			}
			if strings.Contains(stderr, "sekrit-wrong-pw") || strings.Contains(stderr, c.ReplPassword) {
				t.Fatalf("password printed: %q", stderr)
			}
		})
	}
}

func TestRefusesTerminal(t *testing.T) {
	script, err := exec.LookPath("script")
	if err != nil {
		t.Fatalf("util-linux script is needed to give the command a terminal: %v", err)
	}
	// script runs the command with stdout on a pseudo-terminal.
	out, _ := exec.Command(script, "-qec", binary+" backup -d 'host=127.0.0.1 port=1'", "/dev/null").CombinedOutput()
	if !strings.Contains(string(out), "refusing to write a binary backup stream to a terminal") {
		t.Fatalf("got %q", out)
	}
}

func TestSIGINTLeavesNothing(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{})
	c.PgbenchInit(t, 2)
	cmd := exec.Command(binary, "backup", "-d", c.DSN(), "-c", "fast", "-r", "2M", "-o", filepath.Join(t.TempDir(), "b.tar"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for c.QueryValue(t, "select count(*) from pg_stat_replication where state in ('backup', 'streaming')") != "2" {
		if time.Now().After(deadline) {
			t.Fatal("backup did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = cmd.Process.Signal(syscall.SIGINT)
	_ = cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 130 || !strings.Contains(stderr.String(), "interrupted") {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
	deadline = time.Now().Add(15 * time.Second)
	for {
		slots := c.QueryValue(t, "select count(*) from pg_replication_slots")
		senders := c.QueryValue(t, "select count(*) from pg_stat_activity where backend_type = 'walsender'")
		if slots == "0" && senders == "0" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after SIGINT: %s slots, %s walsenders", slots, senders)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
