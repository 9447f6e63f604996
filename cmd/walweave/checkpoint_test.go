package main

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/walweave/walweave/internal/pgtest"
)

// TestCLIStartCheckpointFaults, as an operator sees it: during a spread start checkpoint that lasts minutes, terminating either walsender
// makes walweave exit 1 within 5 s with a line naming the side, and SIGINT makes it exit 130
// within 5 s; in every case nothing is left on the server within 5 s.
func TestCLIStartCheckpointFaults(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{Settings: map[string]string{
		"checkpoint_timeout": "30min", "checkpoint_completion_target": "0.9", "max_wal_size": "4GB"}})
	c.PgbenchInit(t, 1)
	c.Exec(t, "checkpoint")
	for _, tc := range []struct {
		name, want string
		code       int
	}{
		{"terminate WAL walsender", "WAL receiver", 1},
		{"terminate base backup walsender", "base backup", 1},
		{"SIGINT", "interrupted", 130},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c.Exec(t, "update pgbench_accounts set abalance = abalance + 1") // dirty: a long checkpoint
			cmd := exec.Command(binary, "backup", "-d", c.DSN(), "-o", filepath.Join(t.TempDir(), "b.tar"))
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan struct{})
			go func() { _ = cmd.Wait(); close(exited) }()
			t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
			var a, b string
			deadline := time.Now().Add(60 * time.Second)
			for {
				v := c.QueryValue(t, `select coalesce((select pid from pg_stat_progress_basebackup
					where phase = 'waiting for checkpoint to finish'), 0) || ' ' || coalesce((select pid
					from pg_stat_replication where pid not in (select pid from pg_stat_progress_basebackup)
					order by pid limit 1), 0)`)
				a, b, _ = strings.Cut(v, " ")
				if a != "0" && b != "0" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the backup did not reach the checkpoint: %s", stderr.String())
				}
				time.Sleep(50 * time.Millisecond)
			}
			time.Sleep(time.Second)
			at := time.Now()
			switch tc.name {
			case "terminate WAL walsender":
				c.Exec(t, "select pg_terminate_backend($1::int)", b)
			case "terminate base backup walsender":
				c.Exec(t, "select pg_terminate_backend($1::int)", a)
			default:
				_ = cmd.Process.Signal(syscall.SIGINT)
			}
			select {
			case <-exited:
			case <-time.After(30 * time.Second):
				t.Fatalf("walweave still runs 30 s after the fault")
			}
			took := time.Since(at)
			t.Logf("exit %d %v after the fault: %s", cmd.ProcessState.ExitCode(), took.Round(time.Millisecond), strings.TrimSpace(stderr.String()))
			if took > 5*time.Second {
				t.Errorf("exited %v after the fault, want within 5 s", took)
			}
			if code := cmd.ProcessState.ExitCode(); code != tc.code || !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("exit %d, stderr %q: want %d and %q", code, stderr.String(), tc.code, tc.want)
			}
			for {
				left := c.QueryValue(t, `select (select count(*) from pg_replication_slots) +
					(select count(*) from pg_stat_activity where backend_type = 'walsender')`)
				if left == "0" {
					t.Logf("nothing left on the server %v after the fault", time.Since(at).Round(time.Millisecond))
					break
				}
				if time.Since(at) > 5*time.Second {
					t.Fatalf("%s slots and walsenders left on the server 5 s after the fault", left)
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
}
