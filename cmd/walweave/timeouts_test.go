package main

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/walweave/walweave/internal/pgtest"
	"github.com/walweave/walweave/internal/pgtest/pgproxy"
	"github.com/walweave/walweave/mux"
)

// startBackupCLI starts `walweave backup` with args, and returns a function that waits for its
// exit (failing the test after limit) and returns the exit status, stderr and when it exited.
func startBackupCLI(t *testing.T, args ...string) func(limit time.Duration) (int, string, time.Time) {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"backup"}, args...)...)
	var stderr pgtest.SyncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan time.Time, 1)
	go func() { _ = cmd.Wait(); exited <- time.Now() }()
	t.Cleanup(func() { _ = cmd.Process.Signal(syscall.SIGKILL) })
	return func(limit time.Duration) (int, string, time.Time) {
		t.Helper()
		select {
		case at := <-exited:
			return cmd.ProcessState.ExitCode(), stderr.String(), at
		case <-time.After(limit):
			t.Fatalf("walweave backup still runs after %v: %s", limit, stderr.String())
			return 0, "", time.Time{}
		}
	}
}

// waitUnderWay polls until c's backup is under way (base backup sending, WAL streaming).
func waitUnderWay(t *testing.T, c *pgtest.Cluster) {
	t.Helper()
	acted := <-pgtest.WhenBackupsUnderWay([]*pgtest.Cluster{c}, time.Minute, func() error { return nil })
	if acted.Err != nil {
		t.Fatal(acted.Err)
	}
}

// TestCLIProgressTimeoutFlag: --progress-timeout reaches the backup. Behind a proxy that stops
// forwarding in the middle of the data (TCP stays alive, so keepalives see nothing wrong),
// `--progress-timeout 3s` fails the backup with a line naming the progress timeout within the
// timeout plus a margin, far sooner than the 60 s default would, and keeps no file.
func TestCLIProgressTimeoutFlag(t *testing.T) {
	const progress = 3 * time.Second
	c := pgtest.Start(t, pgtest.Options{})
	c.PgbenchInit(t, 1)
	p, dsn := pgproxy.To(t, c)
	out := filepath.Join(t.TempDir(), "b.tar")
	wait := startBackupCLI(t, "-d", dsn, "-c", "fast", "-r", "32k", "--progress-timeout", progress.String(), "-o", out)
	waitUnderWay(t, c)
	pgproxy.Stall(t, p)
	at := time.Now()
	code, stderr, exitAt := wait(progress + 30*time.Second)
	took := exitAt.Sub(at)
	t.Logf("exit %d %v after the stall: %s", code, took.Round(time.Millisecond), strings.TrimSpace(stderr))
	if code != 1 || !strings.Contains(stderr, "progress timeout") {
		t.Fatalf("exit %d, stderr %q: want 1 and the progress timeout named", code, stderr)
	}
	if limit := progress + 10*time.Second; took > limit || took >= mux.DefaultProgressTimeout {
		t.Fatalf("failed %v after the stall, want within %v (the flag's value, not the default %v)", took, limit, mux.DefaultProgressTimeout)
	}
	absent(t, out, out+".tmp")
}

// TestCLITCPUserTimeoutFlag: --tcp-user-timeout reaches both ends. In a private network
// namespace, the base backup connection is black-holed in the middle of the data: with
// `--tcp-user-timeout 5s` walweave fails with "timed out" naming the base backup within the
// keepalive idle time plus 5 s (plus a margin), well before the 40 s default's bound, and the
// server drops the walsenders and the slot as soon.
func TestCLITCPUserTimeoutFlag(t *testing.T) {
	if pgtest.InOwnNetns(t) {
		return
	}
	const userTimeout = 5 * time.Second
	c := pgtest.Start(t, pgtest.Options{})
	c.PgbenchInit(t, 1)
	out := filepath.Join(t.TempDir(), "b.tar")
	wait := startBackupCLI(t, "-d", c.DSN(), "-c", "fast", "-r", "32k", "--tcp-user-timeout", userTimeout.String(), "-o", out)
	waitUnderWay(t, c)
	var pid int
	if _, err := fmt.Sscan(c.QueryValue(t, "select pid from pg_stat_progress_basebackup"), &pid); err != nil {
		t.Fatal(err)
	}
	c.BlackHole(t, pid)
	at := time.Now()
	limit := mux.DefaultKeepaliveIdle + userTimeout + 10*time.Second
	code, stderr, exitAt := wait(limit + 60*time.Second)
	took := exitAt.Sub(at)
	t.Logf("exit %d %v after the black hole: %s", code, took.Round(time.Millisecond), strings.TrimSpace(stderr))
	if code != 1 || !strings.Contains(stderr, "timed out") || !strings.Contains(stderr, "base backup") {
		t.Fatalf("exit %d, stderr %q: want 1, the base backup side, timed out", code, stderr)
	}
	if took > limit {
		t.Fatalf("failed %v after the black hole, want within %v (keepalive idle + the flag's 5 s)", took, limit)
	}
	absent(t, out, out+".tmp")
	deadline := at.Add(limit + 10*time.Second)
	for {
		left := c.QueryValue(t, "select (select count(*) from pg_replication_slots) + (select count(*) from pg_stat_activity where backend_type = 'walsender')")
		if left == "0" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s slots and walsenders left on the server %v after the black hole", left, time.Since(at))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
