package mux_test

import (
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/walweave/walweave/internal/pgtest"
	"github.com/walweave/walweave/mux"
)

// spreadCheckpointCluster starts a cluster whose next spread checkpoint lasts minutes: every
// page of pgbench_accounts is dirty and the checkpoint may spread over 27 minutes, so it
// writes about one buffer per 100 ms (CheckpointWriteDelay), some 3 minutes for them all
// (measured: the backup still waits for it 60 s after it started).
func spreadCheckpointCluster(t *testing.T, opts pgtest.Options) *pgtest.Cluster {
	t.Helper()
	if opts.Settings == nil {
		opts.Settings = map[string]string{}
	}
	opts.Settings["checkpoint_timeout"] = "30min"
	opts.Settings["checkpoint_completion_target"] = "0.9"
	opts.Settings["max_wal_size"] = "4GB"
	c := pgtest.Start(t, opts)
	c.PgbenchInit(t, 1)
	c.Exec(t, "checkpoint")
	dirty(t, c)
	return c
}

// dirty dirties every page of pgbench_accounts (about 1,700 buffers at scale 1).
func dirty(t *testing.T, c *pgtest.Cluster) {
	t.Helper()
	c.Exec(t, "update pgbench_accounts set abalance = abalance + 1")
}

// backupAsync runs mux.Backup in a goroutine; the channel gets its error.
func backupAsync(ctx context.Context, cfg mux.Config) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := mux.Backup(ctx, io.Discard, cfg)
		done <- err
	}()
	return done
}

// walsenders waits until the base backup is in phase (pg_stat_progress_basebackup) and the
// WAL connection's walsender is in a state matching walState (pg_stat_replication), and
// returns the two walsenders' pids.
func walsenders(t *testing.T, c *pgtest.Cluster, done <-chan error, phase, walState string) (a, b int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-done:
			t.Fatalf("backup ended before reaching %q: %v", phase, err)
		default:
		}
		// One query, so that A (in state startup before its BASE_BACKUP) is told from B.
		v := c.QueryValue(t, `select coalesce((select pid from pg_stat_progress_basebackup where phase = $1), 0) || ' ' ||
			coalesce((select pid from pg_stat_replication where state ~ $2 and pid not in
				(select pid from pg_stat_progress_basebackup) order by pid limit 1), 0)`, phase, walState)
		as, bs, _ := strings.Cut(v, " ")
		a, _ = strconv.Atoi(as)
		b, _ = strconv.Atoi(bs)
		if a != 0 && b != 0 {
			return a, b
		}
		if time.Now().After(deadline) {
			t.Fatalf("the backup did not reach %q / %q: %s", phase, walState,
				c.QueryValue(t, "select string_agg(pid || ' ' || state, ', ') from pg_stat_replication"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

const phaseCheckpoint = "waiting for checkpoint to finish"

// awaitFailure waits for the backup to fail within limit and returns its error and how long
// it took.
func awaitFailure(t *testing.T, done <-chan error, since time.Time, limit time.Duration) (error, time.Duration) {
	t.Helper()
	select {
	case err := <-done:
		took := time.Since(since)
		if err == nil {
			t.Fatal("the backup succeeded")
		}
		t.Logf("failed %v after the fault: %v", took.Round(time.Millisecond), err)
		if took > limit {
			t.Errorf("took %v to fail, want at most %v", took.Round(time.Millisecond), limit)
		}
		return err, took
	case <-time.After(limit + 30*time.Second):
		t.Fatalf("the backup did not fail within %v of the fault", limit+30*time.Second)
	}
	return nil, 0
}

// assertGoneWithin waits until the server has no replication slot, no walsender and no base
// backup, failing the test if that takes longer than limit; it returns the time it took.
func assertGoneWithin(t *testing.T, c *pgtest.Cluster, since time.Time, limit time.Duration) time.Duration {
	t.Helper()
	for {
		left := c.QueryValue(t, `select (select count(*) from pg_replication_slots) || ' slots, ' ||
			(select count(*) from pg_stat_activity where backend_type = 'walsender') || ' walsenders, ' ||
			(select count(*) from pg_stat_progress_basebackup) || ' base backups'`)
		if left == "0 slots, 0 walsenders, 0 base backups" {
			took := time.Since(since)
			t.Logf("nothing left on the server %v after the fault", took.Round(time.Millisecond))
			return took
		}
		if time.Since(since) > limit {
			t.Fatalf("%v after the fault, left on the server: %s", time.Since(since).Round(time.Millisecond), left)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func wantSide(t *testing.T, err error, side mux.Side, phase mux.Phase) {
	t.Helper()
	var me *mux.Error
	if !errors.As(err, &me) {
		t.Fatalf("error %T is not a *mux.Error: %v", err, err)
	}
	if me.Side != side || me.Phase != phase {
		t.Errorf("error names side %q phase %q, want %q %q", me.Side, me.Phase, side, phase)
	}
}

// TestStartCheckpointFaults: during a spread start checkpoint
// that lasts minutes, a terminated walsender on either connection, or the caller's
// cancellation, ends the backup within 5 s and leaves nothing on the server within 5 s: the
// idle WAL connection is watched during the checkpoint, and the walsender waiting for the
// checkpoint gets a cancel request.
func TestStartCheckpointFaults(t *testing.T) {
	c := spreadCheckpointCluster(t, pgtest.Options{})
	var runCfg func(t *testing.T, cfg mux.Config, fault func(ctx context.CancelFunc, a, b int), side mux.Side, limit time.Duration)
	run := func(t *testing.T, fault func(ctx context.CancelFunc, a, b int), side mux.Side) {
		runCfg(t, mux.Config{}, fault, side, 5*time.Second)
	}
	runCfg = func(t *testing.T, cfg mux.Config, fault func(ctx context.CancelFunc, a, b int), side mux.Side, limit time.Duration) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		cfg.ConnString = c.DSN()
		done := backupAsync(ctx, cfg)
		a, b := walsenders(t, c, done, phaseCheckpoint, ".")
		time.Sleep(time.Second) // well inside the checkpoint
		if got := c.QueryValue(t, "select count(*) from pg_stat_progress_basebackup where phase = $1", phaseCheckpoint); got != "1" {
			t.Fatal("the checkpoint ended too soon for the test")
		}
		at := time.Now()
		fault(cancel, a, b)
		err, took := awaitFailure(t, done, at, limit)
		wantSide(t, err, side, mux.PhaseCheckpoint)
		assertGoneWithin(t, c, at, took+5*time.Second)
		dirty(t, c)
	}
	terminate := func(which string) func(context.CancelFunc, int, int) {
		return func(_ context.CancelFunc, a, b int) {
			pid := a
			if which == "WAL" {
				pid = b
			}
			c.Exec(t, "select pg_terminate_backend($1)", pid)
		}
	}
	t.Run("terminate WAL walsender", func(t *testing.T) { run(t, terminate("WAL"), mux.SideWAL) })
	t.Run("terminate base backup walsender", func(t *testing.T) { run(t, terminate("A"), mux.SideBaseBackup) })
	t.Run("cancel", func(t *testing.T) {
		run(t, func(cancel context.CancelFunc, _, _ int) { cancel() }, mux.SideBaseBackup)
	})
	// During the checkpoint: a stopped WAL walsender does not answer the probe.
	t.Run("stop WAL walsender", func(t *testing.T) {
		var stopped int
		t.Cleanup(func() {
			if stopped != 0 {
				_ = syscall.Kill(stopped, syscall.SIGCONT)
			}
		})
		runCfg(t, mux.Config{ProgressTimeout: 5 * time.Second}, func(_ context.CancelFunc, _, b int) {
			if err := syscall.Kill(b, syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
			stopped = b
			go func() { time.Sleep(9 * time.Second); _ = syscall.Kill(b, syscall.SIGCONT) }()
		}, mux.SideWAL, 9*time.Second)
	})
}

// TestStoppedWalsender: a walsender stopped with SIGSTOP (TCP stays up,
// nothing is sent) fails its side within the progress timeout, with a message that names it.
func TestStoppedWalsender(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{})
	c.PgbenchInit(t, 1)
	const timeout = 5 * time.Second
	for _, tc := range []struct {
		side mux.Side
		want string
	}{{mux.SideBaseBackup, "progress timeout"}, {mux.SideWAL, "progress timeout"}} {
		t.Run(string(tc.side), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			// 32 kB/s: the copy lasts minutes, the server sends something every second.
			done := backupAsync(ctx, mux.Config{ConnString: c.DSN(), Checkpoint: mux.CheckpointFast,
				MaxRate: 32 << 10, ProgressTimeout: timeout})
			a, b := walsenders(t, c, done, "streaming database files", "streaming")
			time.Sleep(time.Second)
			pid := a
			if tc.side == mux.SideWAL {
				pid = b
			}
			if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
			cont := func() { _ = syscall.Kill(pid, syscall.SIGCONT) }
			t.Cleanup(cont)
			at := time.Now()
			err, took := awaitFailure(t, done, at, timeout+5*time.Second)
			if took < timeout/2 { // silence is counted from the last byte, before the stop
				t.Errorf("failed after %v, before the progress timeout %v", took, timeout)
			}
			wantSide(t, err, tc.side, mux.PhaseStreaming)
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			cont()
			assertGoneWithin(t, c, at, took+10*time.Second)
		})
	}
}
