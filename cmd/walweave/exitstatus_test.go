package main

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/walweave/walweave/internal/pgtest"
	fixture "github.com/walweave/walweave/internal/verifytest"
)

// exitEnv is what the rows of TestExitStatusTable share: one server, a complete stream taken
// from it, and the same stream with one byte of a data file changed.
type exitEnv struct {
	c       *pgtest.Cluster
	dir     string
	good    string // a complete stream file
	sha     string // a complete stream file with SHA256 manifest checksums
	corrupt string // good with one byte of a relation file changed
}

// run runs the built binary as a black box: args, stdin (nil: /dev/null), stdout (nil: kept in
// a buffer and dropped). It returns the exit status and stderr.
func (e *exitEnv) run(t *testing.T, stdin io.Reader, stdout io.Writer, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	var se bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, &se
	if stdout == nil {
		cmd.Stdout = io.Discard
	}
	cmd.Env = append(os.Environ(), "PGPASSWORD=", "PGPASSFILE=/nonexistent", "PGCONNECT_TIMEOUT=5")
	err := cmd.Run()
	code := cmd.ProcessState.ExitCode()
	if err != nil && code < 0 {
		t.Fatalf("walweave %s: %v", strings.Join(args, " "), err)
	}
	return code, se.String()
}

// interrupt starts the binary, waits until ready reports that it is in the middle of its work
// (polled; the bound is the time a step of the work may take, a minute), sends sig and returns
// the exit status and stderr. It fails the test when the binary exits before ready or does
// not exit within the 30 s its cleanup may take.
func (e *exitEnv) interrupt(t *testing.T, sig syscall.Signal, ready func() bool, stdout io.Writer, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	var se pgtest.SyncBuffer
	cmd.Stdout, cmd.Stderr = stdout, &se
	if stdout == nil {
		cmd.Stdout = io.Discard
	}
	cmd.Env = append(os.Environ(), "PGPASSWORD=", "PGPASSFILE=/nonexistent", "PGCONNECT_TIMEOUT=5")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	defer func() {
		select {
		case <-exited:
		default:
			_ = cmd.Process.Kill()
			<-exited
		}
	}()
	deadline := time.Now().Add(time.Minute)
	for !ready() {
		select {
		case <-exited:
			t.Fatalf("walweave %s exited (%d) before it was interrupted: %s", strings.Join(args, " "), cmd.ProcessState.ExitCode(), se.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("walweave %s: not under way after a minute", strings.Join(args, " "))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("walweave %s did not exit within 30 s of %v", strings.Join(args, " "), sig)
	}
	return cmd.ProcessState.ExitCode(), se.String()
}

// terminal runs the binary with stdin and stdout on a pseudo-terminal (util-linux script -e
// returns the command's exit status).
func (e *exitEnv) terminal(t *testing.T, args ...string) (int, string) {
	t.Helper()
	script, err := exec.LookPath("script")
	if err != nil {
		t.Fatalf("util-linux script is needed to give the command a terminal: %v", err)
	}
	line := binary
	for _, a := range args {
		line += " '" + a + "'"
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, script, "-qec", line, "/dev/null")
	out, _ := cmd.CombinedOutput()
	return cmd.ProcessState.ExitCode(), string(out)
}

// fifoWriter makes a named pipe and writes the first half of the stream file src into it once
// a reader opens it, keeping it open (the reader then waits for more) until the test ends. It
// returns the pipe's path and a function reporting whether the half was taken.
func (e *exitEnv) fifoWriter(t *testing.T, src string) (string, func() bool) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "stream.fifo")
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	written := make(chan struct{})
	stop := make(chan struct{})
	go func() {
		f, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err != nil {
			return
		}
		defer f.Close()
		if _, err := f.Write(b[:len(b)/2]); err == nil {
			close(written)
		}
		<-stop
	}()
	t.Cleanup(func() {
		close(stop)
		// Unblock the open if no reader ever came.
		if f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
	})
	return p, func() bool {
		select {
		case <-written:
			return true
		default:
			return false
		}
	}
}

// changeDataByte copies src to dst with one byte changed in the middle of the first relation
// file of at least 16 kB (a relation file: pg_verifybackup, walweave verify and restore check
// it against the manifest).
func changeDataByte(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	cr := &fixture.CountingReader{R: bytes.NewReader(b)}
	tr := tar.NewReader(cr)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("no relation file of 16 kB in %s: %v", src, err)
		}
		if h.Typeflag == tar.TypeReg && strings.HasPrefix(h.Name, "base/") && h.Size >= 16384 {
			off := cr.N + h.Size/2 // the header is read; cr.N is where the content starts
			b[off] ^= 0xff
			break
		}
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func absent(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Fatalf("%s exists (%v)", p, err)
		}
	}
}

// serverClean waits until the server has no replication slot and no walsender left (the
// walsenders end when walweave's connections close; polled for the TCP user timeout's 40 s).
func (e *exitEnv) serverClean(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(40 * time.Second)
	for {
		slots := e.c.QueryValue(t, "select count(*) from pg_replication_slots")
		senders := e.c.QueryValue(t, "select count(*) from pg_stat_activity where backend_type = 'walsender'")
		if slots == "0" && senders == "0" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("left on the server: %s slots, %s walsenders", slots, senders)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// backupUnderWay reports whether both of a backup's connections are in the server's
// pg_stat_replication (the base backup sending, the WAL streaming).
func (e *exitEnv) backupUnderWay(t *testing.T) func() bool {
	return func() bool {
		ok, err := e.c.BackupUnderWay(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
}

// exitRow is one cell of the exit-status table: the command, what the cell says, the status,
// and how to bring it about (run returns the exit status and stderr; it checks the rest).
type exitRow struct {
	cmd, cell string
	code      int
	run       func(t *testing.T) (int, string)
}

// TestExitStatusTable: every cell of the README's exit-status table, each through the built
// binary with a command line (and a signal, a terminal or a pipe where the cell says so).
func TestExitStatusTable(t *testing.T) {
	e := &exitEnv{c: pgtest.Start(t, pgtest.Options{}), dir: t.TempDir()}
	e.c.PgbenchInit(t, 2)
	e.good = filepath.Join(e.dir, "good.tar")
	if code, stderr := e.run(t, nil, nil, "backup", "-d", e.c.DSN(), "-c", "fast", "-o", e.good); code != 0 {
		t.Fatalf("backup: exit %d: %s", code, stderr)
	}
	e.sha = filepath.Join(e.dir, "sha.tar")
	if code, stderr := e.run(t, nil, nil, "backup", "-d", e.c.DSN(), "-c", "fast", "--manifest-checksums", "SHA256", "-o", e.sha); code != 0 {
		t.Fatalf("backup: exit %d: %s", code, stderr)
	}
	e.corrupt = filepath.Join(e.dir, "corrupt.tar")
	changeDataByte(t, e.good, e.corrupt)
	nowhere := "host=127.0.0.1 port=1 user=x"

	rows := []exitRow{
		// backup
		{"backup", "complete backup written", 0, func(t *testing.T) (int, string) {
			out := filepath.Join(t.TempDir(), "b.tar")
			code, stderr := e.run(t, nil, nil, "backup", "-d", e.c.DSN(), "-c", "fast", "-o", out)
			if code == 0 {
				if l := pgtest.ListTar(t, out); l[len(l)-1].Name != "backup_manifest" {
					t.Fatal("the stream does not end with backup_manifest")
				}
				absent(t, out+".tmp")
			}
			return code, stderr
		}},
		{"backup", "failed (server unreachable), one line on stderr", 1, func(t *testing.T) (int, string) {
			out := filepath.Join(t.TempDir(), "b.tar")
			code, stderr := e.run(t, nil, nil, "backup", "-d", nowhere, "-o", out)
			oneLineErr(t, stderr)
			absent(t, out, out+".tmp")
			return code, stderr
		}},
		{"backup", "the reader of stdout closed it (| head)", 1, func(t *testing.T) (int, string) {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			go func() {
				_, _ = io.CopyN(io.Discard, r, 64<<10)
				r.Close()
			}()
			code, stderr := e.run(t, nil, w, "backup", "-d", e.c.DSN(), "-c", "fast")
			w.Close()
			e.serverClean(t)
			return code, stderr
		}},
		{"backup", "usage: bad flag", 2, func(t *testing.T) (int, string) {
			return e.run(t, nil, nil, "backup", "-d", nowhere, "--no-such-flag")
		}},
		{"backup", "usage: -o a directory, refused before connecting", 2, func(t *testing.T) (int, string) {
			code, stderr := e.run(t, nil, nil, "backup", "-d", nowhere, "-o", t.TempDir())
			if strings.Contains(stderr, "connect") {
				t.Fatalf("it tried to connect: %s", stderr)
			}
			return code, stderr
		}},
		{"backup", "usage: stdout a terminal", 2, func(t *testing.T) (int, string) {
			code, out := e.terminal(t, "backup", "-d", nowhere)
			if !strings.Contains(out, "terminal") {
				t.Fatalf("no word of the terminal: %q", out)
			}
			return code, out
		}},
		{"backup", "SIGTERM on stdout: the stream is said to be incomplete", 130, func(t *testing.T) (int, string) {
			var out pgtest.SyncBuffer
			underWay := e.backupUnderWay(t)
			written := func() bool { return underWay() && len(out.String()) > 0 }
			code, stderr := e.interrupt(t, syscall.SIGTERM, written, &out, "backup", "-d", e.c.DSN(), "-c", "fast", "-r", "2M")
			if !strings.Contains(stderr, "incomplete") {
				t.Fatalf("stderr does not say the stream is incomplete: %q", stderr)
			}
			e.serverClean(t)
			return code, stderr
		}},

		// verify
		{"verify", "stream complete and correct, every checksum verified", 0, func(t *testing.T) (int, string) {
			return e.run(t, nil, nil, "verify", e.good)
		}},
		{"verify", "problems (a changed data byte), listed on stdout", 1, func(t *testing.T) (int, string) {
			var out bytes.Buffer
			code, stderr := e.run(t, nil, &out, "verify", e.corrupt)
			if !strings.Contains(strings.ToLower(out.String()), "checksum") {
				t.Fatalf("stdout does not list the checksum problem: %q", out.String())
			}
			return code, stderr
		}},
		{"verify", "SHA checksums not verified from a pipe", 1, func(t *testing.T) (int, string) {
			f, err := os.Open(e.sha)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			// An io.Reader that is not an *os.File: exec feeds it through a pipe.
			return e.run(t, io.MultiReader(f), nil, "verify")
		}},
		{"verify", "usage: bad flag", 2, func(t *testing.T) (int, string) {
			return e.run(t, nil, nil, "verify", "--no-such-flag", e.good)
		}},
		{"verify", "usage: unreadable input", 2, func(t *testing.T) (int, string) {
			return e.run(t, nil, nil, "verify", filepath.Join(t.TempDir(), "missing.tar"))
		}},
		{"verify", "problems (not a tar stream)", 1, func(t *testing.T) (int, string) {
			p := filepath.Join(t.TempDir(), "junk.tar")
			if err := os.WriteFile(p, bytes.Repeat([]byte("not a tar stream "), 1000), 0o644); err != nil {
				t.Fatal(err)
			}
			return e.run(t, nil, nil, "verify", p)
		}},
		{"verify", "usage: undecodable input (bzip2, which walweave does not decode)", 2, func(t *testing.T) (int, string) {
			p := filepath.Join(t.TempDir(), "base.tar.bz2")
			if err := os.WriteFile(p, append([]byte("BZh91AY&SY"), bytes.Repeat([]byte{7}, 4096)...), 0o644); err != nil {
				t.Fatal(err)
			}
			return e.run(t, nil, nil, "verify", p)
		}},
		{"verify", "usage: terminal stdin", 2, func(t *testing.T) (int, string) {
			code, out := e.terminal(t, "verify")
			if !strings.Contains(out, "terminal") {
				t.Fatalf("no word of the terminal: %q", out)
			}
			return code, out
		}},
		// restore
		{"restore", "restored and verified", 0, func(t *testing.T) (int, string) {
			dir := filepath.Join(t.TempDir(), "data")
			code, stderr := e.run(t, nil, nil, "restore", "-D", dir, "--no-sync", e.good)
			if code == 0 {
				if _, err := os.Stat(filepath.Join(dir, "PG_VERSION")); err != nil {
					t.Fatal(err)
				}
			}
			return code, stderr
		}},
		{"restore", "failed (a changed data byte): what it wrote is removed", 1, func(t *testing.T) (int, string) {
			dir := filepath.Join(t.TempDir(), "data")
			code, stderr := e.run(t, nil, nil, "restore", "-D", dir, "--no-sync", e.corrupt)
			absent(t, dir)
			return code, stderr
		}},
		{"restore", "failed with --no-clean: what it wrote is kept", 1, func(t *testing.T) (int, string) {
			dir := filepath.Join(t.TempDir(), "data")
			code, stderr := e.run(t, nil, nil, "restore", "-D", dir, "--no-sync", "--no-clean", e.corrupt)
			if _, err := os.Stat(filepath.Join(dir, "PG_VERSION")); err != nil {
				t.Fatalf("--no-clean removed what it wrote: %v", err)
			}
			return code, stderr
		}},
		{"restore", "usage: no -D", 2, func(t *testing.T) (int, string) {
			return e.run(t, nil, nil, "restore", e.good)
		}},
		{"restore", "usage: bad recovery target", 2, func(t *testing.T) (int, string) {
			dir := filepath.Join(t.TempDir(), "data")
			code, stderr := e.run(t, nil, nil, "restore", "-D", dir, "--recovery", "--target-time", "yesterday", e.good)
			absent(t, dir)
			return code, stderr
		}},
		{"restore", "usage: unknown --owner", 2, func(t *testing.T) (int, string) {
			dir := filepath.Join(t.TempDir(), "data")
			code, stderr := e.run(t, nil, nil, "restore", "-D", dir, "--owner", "no-such-user-walweave", e.good)
			absent(t, dir)
			return code, stderr
		}},
		{"restore", "usage: terminal stdin", 2, func(t *testing.T) (int, string) {
			code, out := e.terminal(t, "restore", "-D", filepath.Join(t.TempDir(), "data"))
			if !strings.Contains(out, "terminal") {
				t.Fatalf("no word of the terminal: %q", out)
			}
			return code, out
		}},
	}
	// 130 on SIGINT and on SIGTERM alike.
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		rows = append(rows, []exitRow{
			{"backup", sig.String() + " with -o: nothing kept, nothing left on the server", 130, func(t *testing.T) (int, string) {
				out := filepath.Join(t.TempDir(), "b.tar")
				code, stderr := e.interrupt(t, sig, e.backupUnderWay(t), nil, "backup", "-d", e.c.DSN(), "-c", "fast", "-r", "2M", "-o", out)
				absent(t, out, out+".tmp")
				e.serverClean(t)
				return code, stderr
			}},
			{"verify", sig.String() + ": interrupted", 130, func(t *testing.T) (int, string) {
				p, ready := e.fifoWriter(t, e.good)
				return e.interrupt(t, sig, ready, nil, "verify", p)
			}},
			{"restore", sig.String() + ": what it wrote is removed", 130, func(t *testing.T) (int, string) {
				p, ready := e.fifoWriter(t, e.good)
				dir := filepath.Join(t.TempDir(), "data")
				code, stderr := e.interrupt(t, sig, ready, nil, "restore", "-D", dir, "--no-sync", p)
				absent(t, dir)
				return code, stderr
			}},
		}...)
	}
	for _, r := range rows {
		t.Run(fmt.Sprintf("%s %d %s", r.cmd, r.code, r.cell), func(t *testing.T) {
			code, stderr := r.run(t)
			if code != r.code {
				t.Fatalf("walweave %s (%s): exit %d, want %d; stderr:\n%s", r.cmd, r.cell, code, r.code, stderr)
			}
			t.Logf("exit %d: %s", code, strings.TrimSpace(stderr))
		})
	}
}

// TestRestoreOwnerOfParent: run as root without --owner into a directory that does not exist
// yet, restore gives the files to the owner of the directory it is created in (here the
// server's user), as the README says, and says so on stderr.
func TestRestoreOwnerOfParent(t *testing.T) {
	requireRoot(t, "the ownership rules apply to a restore run as root")
	c := pgtest.Start(t, pgtest.Options{})
	src := filepath.Join(t.TempDir(), "b.tar")
	e := &exitEnv{c: c}
	if code, stderr := e.run(t, nil, nil, "backup", "-d", c.DSN(), "-c", "fast", "-o", src); code != 0 {
		t.Fatalf("backup: exit %d: %s", code, stderr)
	}
	parent, err := c.NewDir("owner") // owned by the server's user, not root
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(parent)
	if err != nil {
		t.Fatal(err)
	}
	want := fi.Sys().(*syscall.Stat_t).Uid
	if want == 0 {
		t.Fatalf("%s is owned by root; the test needs another owner", parent)
	}
	dir := filepath.Join(parent, "data")
	code, stderr := e.run(t, nil, nil, "restore", "-D", dir, "--no-sync", src)
	if code != 0 {
		t.Fatalf("restore: exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "the owner of "+parent) {
		t.Fatalf("stderr does not name the parent as the owner's source: %q", stderr)
	}
	err = filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if uid := fi.Sys().(*syscall.Stat_t).Uid; uid != want {
			return fmt.Errorf("%s is owned by uid %d, want %d (the owner of %s)", p, uid, want, parent)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("every file owned by uid %s: %s", strconv.Itoa(int(want)), strings.TrimSpace(stderr))
}

// requireRoot skips a test that needs root when not run as root, and fails it instead under
// WALWEAVE_REQUIRE_PG=1 (CI runs as root: a skip there would hide the test).
func requireRoot(t *testing.T, why string) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("WALWEAVE_REQUIRE_PG") == "1" {
		t.Fatalf("needs root (%s); WALWEAVE_REQUIRE_PG=1", why)
	}
	t.Skipf("needs root (%s)", why)
}
