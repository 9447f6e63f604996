package walstream

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/walweave/walweave/ringbuf"
)

// TestWatchThenStream: probes at every moment of a watch (stopped mid-probe too) leave the
// connection clean: Stream afterwards streams as usual.
func TestWatchThenStream(t *testing.T) {
	c := sharedCluster(t)
	for _, watchFor := range []time.Duration{0, 3 * time.Millisecond, 57 * time.Millisecond, 400 * time.Millisecond} {
		r := connectT(t, connCfg(t, c, "", 0))
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		if err := r.PrepareSlot(ctx); err != nil {
			t.Fatal(err)
		}
		stop := r.Watch(time.Millisecond, 5*time.Second, func(err error) { t.Errorf("watch failed: %v", err) })
		time.Sleep(watchFor)
		if err := stop(); err != nil {
			t.Fatalf("watch for %v: %v", watchFor, err)
		}
		if n := r.st.probes.Load(); watchFor > 100*time.Millisecond && n == 0 {
			t.Fatalf("no probe answered in %v", watchFor)
		} else {
			t.Logf("watch for %v: %d probes answered", watchFor, n)
		}
		start := lsnOf(t, c, "select pg_current_wal_lsn()")
		ring := ringbuf.New(4)
		col := newCollector(ring, c.DataDir, false)
		res := startStream(ctx, r, ring, start, 1)
		c.Exec(t, "select pg_switch_wal()")
		r.SetEnd(lsnOf(t, c, "select pg_current_wal_lsn()"), 1)
		if err := res.wait(t, 30*time.Second); err != nil {
			t.Fatalf("Stream after a watch of %v: %v", watchFor, err)
		}
		if _, err := col.wait(t, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		cancel()
		r.Close()
	}
}

// TestWatchTerminated: a walsender terminated while its connection is
// watched is reported at once, as terminated.
func TestWatchTerminated(t *testing.T) {
	c := sharedCluster(t)
	r := connectT(t, connCfg(t, c, "", 0))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := r.PrepareSlot(ctx); err != nil {
		t.Fatal(err)
	}
	failed := make(chan error, 1)
	stop := r.Watch(0, 0, func(err error) { failed <- err })
	defer stop()
	c.Exec(t, "select pg_terminate_backend($1)", r.conn.PID())
	at := time.Now()
	select {
	case err := <-failed:
		t.Logf("reported after %v: %v", time.Since(at), err)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "57P01" || !strings.Contains(err.Error(), "terminated") {
			t.Errorf("error %v: want the termination (57P01)", err)
		}
		if stop() == nil {
			t.Error("stop returned no error after a failure")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a terminated walsender was not noticed within 5 s")
	}
}
