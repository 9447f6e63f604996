package mux_test

import (
	"context"
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/walweave/walweave/internal/pgtest"
	"github.com/walweave/walweave/mux"
)

// Close and Abort may come from another goroutine in every phase: run under -race, the
// session's own goroutine reaches the phase (its Progress callback), lets another goroutine
// close the session and goes on at once, writing slowly from then on, so that both run at the
// same time; the call in progress then fails (in the last phases it may also complete: the
// close came too late), the owner's own Close cleans up, and nothing is left on the server. The phases before Start returns have no *Session
// yet: there another goroutine cancels the context, the same path.
func TestCloseFromAnotherGoroutine(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{})
	c.PgbenchInit(t, 1)
	phases := []mux.Phase{mux.PhaseConnecting, mux.PhaseCheckpoint, mux.PhaseStreaming, mux.PhaseFinishing, mux.PhaseWritingTail}
	for _, phase := range phases {
		for _, how := range []string{"Close", "Abort"} {
			t.Run(string(phase)+"/"+how, func(t *testing.T) {
				closeInPhase(t, c, phase, how)
				assertNothingLeft(t, c)
			})
		}
	}
	// Between two calls: the owner is idle while another goroutine closes, then calls Finish.
	t.Run("between calls", func(t *testing.T) {
		ctx := context.Background()
		s, err := mux.Start(ctx, io.Discard, mux.Config{ConnString: c.DSN(), Checkpoint: mux.CheckpointFast})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.CopyData(ctx); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { s.Close(); close(done) }()
		<-done
		if _, err := s.Finish(ctx); err == nil {
			t.Fatal("Finish after Close succeeded")
		}
		s.Close()
		assertNothingLeft(t, c)
	})
}

// closeInPhase runs a session in this goroutine and closes it from another one while the
// session is in phase.
func closeInPhase(t *testing.T, c *pgtest.Cluster, phase mux.Phase, how string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sessions := make(chan *mux.Session, 1)
	closing := make(chan struct{})
	var reached atomic.Bool
	cfg := mux.Config{ConnString: c.DSN(), Checkpoint: mux.CheckpointFast, ProgressInterval: time.Hour,
		Progress: func(p mux.Progress) {
			if p.Phase != phase || reached.Load() {
				return
			}
			reached.Store(true)
			go func() {
				close(closing)
				switch phase {
				case mux.PhaseConnecting, mux.PhaseCheckpoint:
					cancel()
				default:
					s := <-sessions
					if how == "Close" {
						s.Close()
					} else {
						s.Abort(nil)
					}
				}
			}()
			<-closing
		}}
	s, err := mux.Start(ctx, &slowAfter{reached: &reached}, cfg)
	if err != nil {
		if phase != mux.PhaseConnecting && phase != mux.PhaseCheckpoint {
			t.Fatalf("Start: %v", err)
		}
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Start cancelled in phase %q: %v, want context.Canceled", phase, err)
		}
		return
	}
	defer s.Close()
	if !reached.Load() {
		sessions <- s
	}
	if _, err = s.CopyData(ctx); err == nil {
		_, err = s.Finish(ctx)
	}
	if !reached.Load() {
		t.Fatalf("the session never reached phase %q", phase)
	}
	if err == nil && phase != mux.PhaseFinishing && phase != mux.PhaseWritingTail {
		t.Fatalf("closed in phase %q, the backup succeeded", phase)
	}
	if err == nil {
		t.Logf("closed in phase %q: the backup completed first", phase)
		return
	}
	var me *mux.Error
	if !errors.As(err, &me) && !errors.Is(err, context.Canceled) {
		t.Fatalf("closed in phase %q: %T %v, want a *mux.Error", phase, err, err)
	}
	t.Logf("closed in phase %q: %v", phase, err)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if r := s.Result(); r.StartLSN == 0 {
		t.Fatalf("Result after close: %+v", r)
	}
}

// slowAfter discards what it is given, slowly once the phase is reached: the session is still
// writing when the other goroutine closes it.
type slowAfter struct{ reached *atomic.Bool }

func (w *slowAfter) Write(p []byte) (int, error) {
	if w.reached.Load() {
		time.Sleep(2 * time.Millisecond)
	}
	return len(p), nil
}

// The Progress callback may ask the session for its Result (the callback runs inside the
// session's call): no deadlock, and the result is the backup's so far.
func TestResultFromProgress(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{})
	ctx := context.Background()
	var s atomic.Pointer[mux.Session]
	calls := 0
	cfg := mux.Config{ConnString: c.DSN(), Checkpoint: mux.CheckpointFast, Progress: func(p mux.Progress) {
		if sess := s.Load(); sess != nil {
			if r := sess.Result(); r.StartLSN == 0 {
				t.Errorf("Result from the callback in phase %q: %+v", p.Phase, r)
			}
			calls++
		}
	}}
	sess, err := mux.Start(ctx, io.Discard, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	s.Store(sess)
	if _, err := sess.CopyData(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := sess.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	if calls == 0 {
		t.Fatal("the callback never ran after Start")
	}
}
