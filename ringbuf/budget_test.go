package ringbuf

import (
	"context"
	"testing"
	"time"
)

// TestBudgetSharedByRings: two rings share a budget of two segments; a third Push into a
// non-empty ring waits until the other ring releases a segment, and the budget's bytes come
// back on Release and on Abort.
func TestBudgetSharedByRings(t *testing.T) {
	const seg = 1 << 10
	b := NewBudget(2 * seg)
	r1, r2 := New(8), New(8)
	r1.SetBudget(b)
	r2.SetBudget(b)
	push := func(r *Ring) error {
		s := r.NewSegment()
		s.Data = r.Buffer(seg)
		return r.Push(context.Background(), s, 0, nil)
	}
	if err := push(r1); err != nil {
		t.Fatal(err)
	}
	if err := push(r2); err != nil {
		t.Fatal(err)
	}
	if got := b.Stats().Used; got != 2*seg {
		t.Fatalf("used %d, want %d", got, 2*seg)
	}
	done := make(chan error, 1)
	go func() { done <- push(r1) }() // r1 is not empty and the budget is spent: waits
	waitFor(t, "the Push to block on the budget", func() bool { return r1.pushWaiters() == 1 })
	select {
	case err := <-done:
		t.Fatalf("Push went over the budget: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	s, err := r2.Take(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	r2.Release(s) // frees budget for r1
	if err := recv(t, "the blocked Push", done); err != nil {
		t.Fatal(err)
	}
	if st := r1.Stats(); st.BudgetWaits != 1 || st.Occupied != 2 {
		t.Fatalf("r1 stats %+v", st)
	}
	// An empty ring always gets one segment, even over the limit.
	if err := push(r2); err != nil {
		t.Fatal(err)
	}
	st := b.Stats()
	if st.Used != 3*seg || st.Overdraft != 1 || st.HighWater != 3*seg {
		t.Fatalf("budget stats %+v", st)
	}
	r1.Abort(nil) // queued segments dropped: their bytes come back
	r2.Abort(nil)
	if got := b.Stats().Used; got != 0 {
		t.Fatalf("used %d after Abort, want 0", got)
	}
}

// TestBudgetWaitEndsOnAbort: a Push waiting for the budget returns ErrClosed when its ring is
// aborted, and ctx.Err() when its context ends.
func TestBudgetWaitEndsOnAbort(t *testing.T) {
	b := NewBudget(1)
	r1, r2 := New(4), New(4)
	r1.SetBudget(b)
	r2.SetBudget(b)
	for _, r := range []*Ring{r1, r2} {
		s := r.NewSegment()
		s.Data = make([]byte, 10)
		if err := r.Push(context.Background(), s, 0, nil); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() {
		s := r1.NewSegment()
		s.Data = make([]byte, 10)
		done <- r1.Push(context.Background(), s, 0, nil)
	}()
	waitFor(t, "the Push to block", func() bool { return r1.pushWaiters() == 1 })
	r1.Abort(nil)
	if err := recv(t, "Push after Abort", done); err != ErrClosed {
		t.Fatalf("Push after Abort: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	s := r2.NewSegment()
	s.Data = make([]byte, 10)
	// r1's bytes came back with the Abort; r2 holds 10 of a 1-byte budget.
	if err := r2.Push(ctx, s, 0, nil); err != context.DeadlineExceeded {
		t.Fatalf("Push with an expired context: %v", err)
	}
	r2.Abort(nil)
}
