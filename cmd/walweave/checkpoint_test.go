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
	"github.com/walweave/walweave/walstream"
)

// TestCLIStartCheckpointFaults, as an operator sees it: during a spread start checkpoint that
// lasts minutes, terminating either walsender makes walweave exit 1 with a line naming the
// side, and SIGINT makes it exit 130; in every case within faultBound, and nothing is left on
// the server within faultBound either.
//
// faultBound is walstream.DefaultProbeInterval: walweave reads both connections while the
// checkpoint runs, so a terminated walsender's FATAL is seen at once; the probe sent every
// DefaultProbeInterval only finds a connection that went silent. Exiting within one probe
// interval shows that no keepalive, TCP or progress timeout (40 s and more) was waited for,
// with room for a -race binary on a loaded machine.
func TestCLIStartCheckpointFaults(t *testing.T) {
	const faultBound = walstream.DefaultProbeInterval
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
			if took > faultBound {
				t.Errorf("exited %v after the fault, want within %v", took, faultBound)
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
				if time.Since(at) > faultBound {
					t.Fatalf("%s slots and walsenders left on the server %v after the fault", left, faultBound)
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
}
