package sqlfetch

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/walweave/walweave/internal/pgrepl"
)

// TestTurn: a reader may copy task i out of its socket only once the writer is within
// readAhead tasks of it, counting the task the writer holds (released tasks are consumed), or
// once it has waited turnWait; a cancelled fetch ends the wait.
func TestTurn(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tasks := make([]*task, 10)
	for i := range tasks {
		tasks[i] = &task{done: make(chan struct{})}
	}
	f := newFetcher(ctx, tasks, 8, 3, 1<<20)
	if f.turnWait != maxTurnWait {
		t.Fatalf("turnWait %v, want %v", f.turnWait, maxTurnWait)
	}
	f.readAhead, f.turnWait = 2, time.Hour
	for i := range 2 {
		if !f.turn(i) {
			t.Fatalf("task %d: no turn with nothing consumed", i)
		}
	}
	got := make(chan bool, 1)
	go func() { got <- f.turn(3) }()
	for i := range 2 {
		select {
		case <-got:
			t.Fatalf("task 3 got its turn with %d tasks consumed", i)
		case <-time.After(50 * time.Millisecond):
		}
		f.release(i)
	}
	select {
	case ok := <-got:
		if !ok {
			t.Fatal("turn reported a cancelled fetch")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("task 3 did not get its turn with tasks 0 and 1 consumed")
	}
	// A writer that does not move: the turn comes after turnWait.
	f.turnWait = 20 * time.Millisecond
	start := time.Now()
	if !f.turn(9) {
		t.Fatal("turn reported a cancelled fetch")
	}
	if waited := time.Since(start); waited < f.turnWait {
		t.Fatalf("turn(9) returned after %v, before turnWait (%v), with 2 tasks consumed", waited, f.turnWait)
	}
	f.turnWait = time.Hour
	go func() { got <- f.turn(9) }()
	cancel()
	select {
	case ok := <-got:
		if ok {
			t.Fatal("turn reported a turn after the fetch was cancelled")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a cancelled fetch did not end the wait for a turn")
	}

	f = newFetcher(context.Background(), tasks, 8, 3, 1<<20)
	if !f.turn(9) {
		t.Fatal("readAhead 0 waits")
	}
}

// TestReadAheadSettings: every ReadAhead setting fetches a whole data directory (the writer
// holds one task while it waits for the next, so the fetcher counts that one on top: without
// it, ReadAhead 1 would stop the fetch for good), and -1 reads every result as it arrives.
func TestReadAheadSettings(t *testing.T) {
	mf := makeMemFiles(t, 3, 3<<20+8192*5, 300, 24<<10)
	for _, c := range []struct{ set, want int }{{-1, 0}, {1, 2}, {2, 3}, {3, 4}, {64, 65}} {
		s := memSourceConfig(t, mf, Config{Jobs: 3, ReadAhead: c.set})
		if s.fetch.readAhead != c.want {
			t.Fatalf("ReadAhead %d: the fetcher's read-ahead is %d, want %d", c.set, s.fetch.readAhead, c.want)
		}
		stuck := time.AfterFunc(time.Minute, func() { s.cancel(errors.New("the fetch made no progress for a minute")) })
		var out collect
		copyAll(t, s, &out)
		stuck.Stop()
		if int64(out.b.Len()) < mf.total {
			t.Fatalf("ReadAhead %d: %d bytes of tar for %d of files", c.set, out.b.Len(), mf.total)
		}
	}
	s := memSourceConfig(t, mf, Config{Jobs: 2, TCP: pgrepl.TCP{UserTimeout: 400 * time.Millisecond}})
	if s.fetch.turnWait != 100*time.Millisecond {
		t.Fatalf("turnWait %v with a TCP user timeout of 400 ms, want a quarter of it", s.fetch.turnWait)
	}
	s.cancel(errors.New("test over"))
	s.fetch.wg.Wait()
	if New(Config{}).cfg.ReadAhead < 1 {
		t.Fatalf("the default read-ahead is %d", New(Config{}).cfg.ReadAhead)
	}
}
