package mux_test

import (
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/walweave/walweave/internal/pgtest"
	"github.com/walweave/walweave/mux"
	"github.com/walweave/walweave/pgformat"
)

// shortTCP are network bounds that keep the tests short: a dead connection is noticed after
// about 5 s.
var shortTCP = mux.Config{KeepaliveIdle: 2 * time.Second, KeepaliveInterval: time.Second,
	KeepaliveCount: 3, TCPUserTimeout: 5 * time.Second, ProgressTimeout: 30 * time.Second}

// TestBlackHole: a black hole on either connection, in every
// phase (start checkpoint, streaming, waiting for WAL), is noticed within the TCP bounds
// (tests: about 5 s; defaults: DefaultTCPUserTimeout), the error names the side and says the
// connection timed out, and the server drops the walsenders and the temporary slot within a
// bound of the same order, by the keepalives and user timeout walweave asked it for.
func TestBlackHole(t *testing.T) {
	if pgtest.InOwnNetns(t) {
		return
	}
	c := spreadCheckpointCluster(t, pgtest.Options{})
	withConn := func(cfg mux.Config) mux.Config { cfg.ConnString = c.DSN(); return cfg }
	check := func(t *testing.T, done <-chan error, at time.Time, side mux.Side, phase mux.Phase, detect, gone time.Duration) {
		err, took := awaitFailure(t, done, at, detect)
		wantSide(t, err, side, phase)
		if !strings.Contains(err.Error(), "timed out") || strings.Contains(err.Error(), "unexpected EOF") {
			t.Errorf("error does not say the connection timed out: %v", err)
		}
		assertGoneWithin(t, c, at, took+gone)
	}
	checkpoint := func(t *testing.T, cfg mux.Config, side mux.Side, detect, gone time.Duration) {
		dirty(t, c)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		done := backupAsync(ctx, withConn(cfg))
		a, b := walsenders(t, c, done, phaseCheckpoint, ".")
		time.Sleep(500 * time.Millisecond)
		pid := a
		if side == mux.SideWAL {
			pid = b
		}
		c.BlackHole(t, pid)
		check(t, done, time.Now(), side, mux.PhaseCheckpoint, detect, gone)
	}
	streaming := func(t *testing.T, side mux.Side) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		cfg := shortTCP
		cfg.Checkpoint, cfg.MaxRate = mux.CheckpointFast, 32<<10
		done := backupAsync(ctx, withConn(cfg))
		a, b := walsenders(t, c, done, "streaming database files", "streaming")
		time.Sleep(time.Second)
		pid := a
		if side == mux.SideWAL {
			pid = b
		}
		c.BlackHole(t, pid)
		check(t, done, time.Now(), side, mux.PhaseStreaming, 15*time.Second, 15*time.Second)
	}
	t.Run("checkpoint/WAL", func(t *testing.T) { checkpoint(t, shortTCP, mux.SideWAL, 15*time.Second, 15*time.Second) })
	t.Run("checkpoint/base backup", func(t *testing.T) {
		checkpoint(t, shortTCP, mux.SideBaseBackup, 15*time.Second, 15*time.Second)
	})
	t.Run("streaming/base backup", func(t *testing.T) { streaming(t, mux.SideBaseBackup) })
	t.Run("streaming/WAL", func(t *testing.T) { streaming(t, mux.SideWAL) })
	t.Run("finishing/WAL", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		cfg := withConn(shortTCP)
		cfg.Checkpoint = mux.CheckpointFast
		done := finishing(ctx, t, c, cfg)
		time.Sleep(time.Second)
		b := c.QueryValue(t, "select pid from pg_stat_replication where state = 'streaming'")
		pid, _ := strconv.Atoi(b)
		c.BlackHole(t, pid)
		check(t, done, time.Now(), mux.SideWAL, mux.PhaseFinishing, 15*time.Second, 15*time.Second)
	})
	// The defaults: noticed, and cleaned up on the server, within about DefaultTCPUserTimeout.
	t.Run("defaults/checkpoint/WAL", func(t *testing.T) {
		// At most DefaultTCPUserTimeout after the next probe (sent every 10 s): 50 s.
		checkpoint(t, mux.Config{}, mux.SideWAL, 60*time.Second, 30*time.Second)
	})
	t.Run("defaults/checkpoint/base backup", func(t *testing.T) {
		// The base backup connection carries nothing while the server checkpoints: walweave's
		// keepalives (idle 10 s, then 6 every 5 s) end it within 40 s, at most
		// DefaultKeepaliveIdle + DefaultTCPUserTimeout. On the server, the walsender waiting for
		// the checkpoint reads nothing: walweave's cancel request ends its command at once, and
		// then the error it sends back goes unacknowledged, so that its own user timeout
		// (DefaultTCPUserTimeout, as walweave asked) ends the connection: gone within another
		// DefaultTCPUserTimeout (plus a margin), about 80 s after the cut in all.
		checkpoint(t, mux.Config{}, mux.SideBaseBackup, mux.DefaultKeepaliveIdle+mux.DefaultTCPUserTimeout+10*time.Second,
			mux.DefaultTCPUserTimeout+20*time.Second)
	})
}

// TestProxyBlackHole: a proxy that stops forwarding without
// closing (Toxiproxy's timeout toxic with timeout 0, on every connection) keeps TCP alive on
// both sides, so keepalives see nothing wrong: the progress timeout notices it, in every
// phase, with a message that says so. Once walweave closes its connections the proxy closes
// the server's, and the server drops the walsenders and the slot; only a walsender waiting for
// the start checkpoint stays until the checkpoint ends, as the cancel request cannot pass the
// proxy either (TestBlackHole covers a real network cut, where it does).
func TestProxyBlackHole(t *testing.T) {
	c := spreadCheckpointCluster(t, pgtest.Options{})
	const timeout = 5 * time.Second
	run := func(t *testing.T, phase mux.Phase, cfg mux.Config, setup func(t *testing.T, dsn string) (<-chan error, func() int)) {
		p, dsn := proxyTo(t, c)
		cfg.ConnString = dsn
		done, ready := setup(t, dsn)
		waitPID := ready()
		addToxic(t, p, `{"name":"bh-down","type":"timeout","stream":"downstream","toxicity":1,"attributes":{"timeout":0}}`)
		addToxic(t, p, `{"name":"bh-up","type":"timeout","stream":"upstream","toxicity":1,"attributes":{"timeout":0}}`)
		at := time.Now()
		err, took := awaitFailure(t, done, at, timeout+5*time.Second)
		var me *mux.Error
		if !errors.As(err, &me) || me.Phase != phase {
			t.Errorf("error is not a *mux.Error of phase %q: %v", phase, err)
		}
		if !strings.Contains(err.Error(), "progress timeout") {
			t.Errorf("error does not name the progress timeout: %v", err)
		}
		if phase == mux.PhaseCheckpoint {
			// The WAL side's walsender and slot go with the closed connection.
			deadline := time.Now().Add(10 * time.Second)
			for c.QueryValue(t, "select count(*) from pg_replication_slots") != "0" ||
				c.QueryValue(t, "select count(*) from pg_stat_activity where pid = $1", waitPID) != "0" {
				if time.Now().After(deadline) {
					t.Fatal("the WAL side's walsender or slot is left on the server")
				}
				time.Sleep(100 * time.Millisecond)
			}
			t.Logf("the WAL side's walsender and slot gone %v after the cut", time.Since(at).Round(time.Millisecond))
			return
		}
		assertGoneWithin(t, c, at, took+10*time.Second)
	}
	t.Run("checkpoint", func(t *testing.T) {
		dirty(t, c)
		run(t, mux.PhaseCheckpoint, mux.Config{}, func(t *testing.T, dsn string) (<-chan error, func() int) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			t.Cleanup(cancel)
			done := backupAsync(ctx, mux.Config{ConnString: dsn, ProgressTimeout: timeout})
			return done, func() int { _, b := walsenders(t, c, done, phaseCheckpoint, "."); return b }
		})
	})
	t.Run("streaming", func(t *testing.T) {
		run(t, mux.PhaseStreaming, mux.Config{}, func(t *testing.T, dsn string) (<-chan error, func() int) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			t.Cleanup(cancel)
			done := backupAsync(ctx, mux.Config{ConnString: dsn, ProgressTimeout: timeout,
				Checkpoint: mux.CheckpointFast, MaxRate: 32 << 10})
			return done, func() int {
				_, b := walsenders(t, c, done, "streaming database files", "streaming")
				time.Sleep(time.Second)
				return b
			}
		})
	})
	t.Run("finishing", func(t *testing.T) {
		run(t, mux.PhaseFinishing, mux.Config{}, func(t *testing.T, dsn string) (<-chan error, func() int) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			t.Cleanup(cancel)
			done := finishing(ctx, t, c, mux.Config{ConnString: dsn, ProgressTimeout: timeout, Checkpoint: mux.CheckpointFast})
			return done, func() int { time.Sleep(time.Second); return 0 }
		})
	})
}

// finishing takes a backup's data and has Finish wait for WAL that does not exist yet (1 GiB
// ahead) in a goroutine; the channel gets Finish's error, after Close as Backup does.
func finishing(ctx context.Context, t *testing.T, c *pgtest.Cluster, cfg mux.Config) <-chan error {
	t.Helper()
	s, err := mux.Start(ctx, io.Discard, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CopyData(ctx); err != nil {
		s.Close()
		t.Fatal(err)
	}
	far, err := pgformat.ParseLSN(c.QueryValue(t, "select pg_current_wal_insert_lsn() + 1024*1024*1024"))
	if err == nil {
		err = s.ExtendWAL(far)
	}
	if err != nil {
		s.Close()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.Finish(ctx)
		s.Close()
		done <- err
	}()
	return done
}
