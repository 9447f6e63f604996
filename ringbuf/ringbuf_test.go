package ringbuf

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// long is how long "promptly" may take: generous, so a loaded machine does not flake.
const long = 10 * time.Second

// waitFor polls cond until it holds or long has passed.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(long)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// recv waits for a value on c or fails after long.
func recv[T any](t *testing.T, what string, c <-chan T) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(long):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// pushWaiters reports how many Push calls are blocked.
func (r *Ring) pushWaiters() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pushW
}

// takeWaiters reports how many Take calls are blocked.
func (r *Ring) takeWaiters() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.takeW
}

func seg(r *Ring, i int, size int) *Segment {
	s := r.NewSegment()
	s.Kind = KindSegment
	s.Name = fmt.Sprintf("%024X", i)
	s.Timeline = 1
	s.StartLSN = uint64(i) * uint64(size)
	s.Data = r.Buffer(size)
	binary.LittleEndian.PutUint64(s.Data, uint64(i))
	for j := 8; j < size; j++ {
		s.Data[j] = byte(i + j)
	}
	return s
}

func checkSeg(t *testing.T, s *Segment, i int, size int) {
	t.Helper()
	if s.Name != fmt.Sprintf("%024X", i) || s.StartLSN != uint64(i)*uint64(size) || len(s.Data) != size {
		t.Fatalf("segment %d: got name %q lsn %d len %d", i, s.Name, s.StartLSN, len(s.Data))
	}
	if got := binary.LittleEndian.Uint64(s.Data); got != uint64(i) {
		t.Fatalf("segment %d: data carries %d", i, got)
	}
	for j := 8; j < size; j++ {
		if s.Data[j] != byte(i+j) {
			t.Fatalf("segment %d: byte %d corrupted", i, j)
		}
	}
}

func TestNewDefaults(t *testing.T) {
	for _, n := range []int{0, -3} {
		if c := New(n).Capacity(); c != DefaultSlots {
			t.Errorf("New(%d).Capacity() = %d, want %d", n, c, DefaultSlots)
		}
	}
	r := New(5)
	if r.Capacity() != 5 || r.Stats().Capacity != 5 {
		t.Fatalf("capacity %d / %d", r.Capacity(), r.Stats().Capacity)
	}
	if KindSegment.String() != "segment" || KindHistory.String() != "history" || Kind(7).String() != "Kind(7)" {
		t.Fatal("Kind.String")
	}
}

func TestFIFORandomSpeeds(t *testing.T) {
	const total, size = 10000, 64
	r := New(8)
	ctx := context.Background()
	errc := make(chan error, 1)
	go func() {
		rng := rand.New(rand.NewPCG(1, 2))
		for i := range total {
			if err := r.Push(ctx, seg(r, i, size), time.Millisecond, func() error { return nil }); err != nil {
				errc <- err
				return
			}
			switch rng.IntN(20) {
			case 0:
				time.Sleep(time.Duration(rng.IntN(200)) * time.Microsecond)
			case 1, 2:
				time.Sleep(0)
			}
		}
		r.Close(nil)
		errc <- nil
	}()

	rng := rand.New(rand.NewPCG(3, 4))
	next := 0
	var batch []*Segment
	for {
		batch = batch[:0]
		if rng.IntN(2) == 0 {
			batch = r.TryTakeAll(batch)
		} else {
			s, err := r.Take(ctx)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			batch = append(batch, s)
		}
		for _, s := range batch {
			checkSeg(t, s, next, size)
			next++
			if rng.IntN(10) == 0 {
				time.Sleep(time.Duration(rng.IntN(200)) * time.Microsecond)
			}
			r.Release(s)
		}
	}
	if err := recv(t, "producer", errc); err != nil {
		t.Fatal(err)
	}
	if next != total {
		t.Fatalf("took %d segments, want %d", next, total)
	}
	st := r.Stats()
	if st.Pushed != total || st.Taken != total || st.PushedBytes != total*size || st.Occupied != 0 || st.Queued != 0 {
		t.Fatalf("stats %+v", st)
	}
	if st.HighWater > r.Capacity() {
		t.Fatalf("high water %d > capacity %d", st.HighWater, r.Capacity())
	}
	if st.BuffersAllocated > int64(r.Capacity()+2) {
		t.Fatalf("allocated %d buffers, capacity %d", st.BuffersAllocated, r.Capacity())
	}
	if r.Err() != nil {
		t.Fatal(r.Err())
	}
	t.Logf("stats: %+v", st)
}

func TestPushBlocksWhenFull(t *testing.T) {
	const capacity = 3
	r := New(capacity)
	ctx := context.Background()
	for i := range capacity {
		if err := r.Push(ctx, seg(r, i, 16), 0, nil); err != nil {
			t.Fatal(err)
		}
	}
	if st := r.Stats(); st.Blocks != 0 || st.Occupied != capacity || st.HighWater != capacity {
		t.Fatalf("stats after filling: %+v", st)
	}

	done := make(chan error, 1)
	go func() { done <- r.Push(ctx, seg(r, capacity, 16), 0, nil) }()
	waitFor(t, "Push to block", func() bool { return r.pushWaiters() == 1 })
	if st := r.Stats(); st.Blocks != 1 || st.Pushed != capacity {
		t.Fatalf("stats while blocked: %+v", st)
	}

	// Taking does not free a slot: only Release does.
	taken := r.TryTakeAll(nil)
	if len(taken) != capacity {
		t.Fatalf("took %d", len(taken))
	}
	select {
	case err := <-done:
		t.Fatalf("Push returned %v after a take without release", err)
	case <-time.After(20 * time.Millisecond):
	}
	if r.pushWaiters() != 1 {
		t.Fatal("Push no longer waiting")
	}

	r.Release(taken[0])
	if err := recv(t, "Push after Release", done); err != nil {
		t.Fatal(err)
	}
	st := r.Stats()
	if st.Occupied != capacity || st.Queued != 1 || st.Pushed != capacity+1 || st.BlockedTime <= 0 {
		t.Fatalf("stats after release: %+v", st)
	}
	for _, s := range taken[1:] {
		r.Release(s)
	}
	s, err := r.Take(ctx)
	if err != nil {
		t.Fatal(err)
	}
	checkSeg(t, s, capacity, 16)
	r.Release(s)
	if st := r.Stats(); st.Occupied != 0 || st.HighWater != capacity {
		t.Fatalf("final stats: %+v", st)
	}
}

func TestSeveralBlockedProducers(t *testing.T) {
	// Not the intended use (one producer), but the ring must not lose a wake-up.
	r := New(2)
	ctx := context.Background()
	const producers, each = 4, 200
	errc := make(chan error, producers)
	for p := range producers {
		go func() {
			for i := range each {
				s := r.NewSegment()
				s.Name = fmt.Sprint(p, "/", i)
				if err := r.Push(ctx, s, 0, nil); err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}()
	}
	got := 0
	for got < producers*each {
		s, err := r.Take(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got++
		r.Release(s)
	}
	for range producers {
		if err := recv(t, "producer", errc); err != nil {
			t.Fatal(err)
		}
	}
}

func TestWakeWhileBlocked(t *testing.T) {
	r := New(1)
	ctx := context.Background()
	var calls atomic.Int64
	onWake := func() error { calls.Add(1); return nil }

	// Not blocked: onWake is never called, even with a tiny interval.
	if err := r.Push(ctx, seg(r, 0, 16), time.Nanosecond, onWake); err != nil {
		t.Fatal(err)
	}
	if n := calls.Load(); n != 0 {
		t.Fatalf("onWake called %d times without blocking", n)
	}

	const wake, want = 10 * time.Millisecond, 5
	reached := make(chan struct{})
	var counted atomic.Int64
	onWake = func() error {
		if counted.Add(1) == want {
			close(reached)
		}
		return nil
	}
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- r.Push(ctx, seg(r, 1, 16), wake, onWake) }()
	recv(t, "wake-ups", reached)
	if el := time.Since(start); el < want*wake {
		t.Fatalf("%d wake-ups after %v: faster than the %v interval", want, el, wake)
	}
	s, err := r.Take(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r.Release(s)
	if err := recv(t, "Push", done); err != nil {
		t.Fatal(err)
	}
	after := counted.Load()
	if st := r.Stats(); st.Wakeups != after || st.Blocks != 1 {
		t.Fatalf("stats %+v, counted %d", st, after)
	}
	// Push has returned: no more calls.
	time.Sleep(5 * wake)
	if counted.Load() != after {
		t.Fatal("onWake called after Push returned")
	}
}

func TestWakeErrorAbortsPush(t *testing.T) {
	r := New(1)
	ctx := context.Background()
	if err := r.Push(ctx, seg(r, 0, 16), 0, nil); err != nil {
		t.Fatal(err)
	}
	errWake := errors.New("send status update: broken pipe")
	calls := 0
	s := seg(r, 1, 16)
	err := r.Push(ctx, s, time.Millisecond, func() error {
		calls++
		if calls == 3 {
			return errWake
		}
		return nil
	})
	if !errors.Is(err, errWake) || calls != 3 {
		t.Fatalf("Push = %v after %d calls", err, calls)
	}
	if st := r.Stats(); st.Pushed != 1 || st.Occupied != 1 {
		t.Fatalf("failed Push changed the ring: %+v", st)
	}
	// The caller still owns s and may push it again or give it back.
	r.Release(s)
	// The cached timer is reused and stopped: a later blocked Push works again.
	done := make(chan error, 1)
	go func() { done <- r.Push(ctx, seg(r, 2, 16), time.Millisecond, func() error { return nil }) }()
	waitFor(t, "Push to block", func() bool { return r.Stats().Wakeups >= 5 })
	taken, _ := r.Take(ctx)
	r.Release(taken)
	if err := recv(t, "Push", done); err != nil {
		t.Fatal(err)
	}
}

func TestContextCancel(t *testing.T) {
	r := New(1)
	if err := r.Push(context.Background(), seg(r, 0, 16), 0, nil); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	pushed := make(chan error, 1)
	go func() { pushed <- r.Push(ctx, seg(r, 1, 16), time.Hour, func() error { return nil }) }()
	waitFor(t, "Push to block", func() bool { return r.pushWaiters() == 1 })
	cancel()
	if err := recv(t, "Push", pushed); !errors.Is(err, context.Canceled) {
		t.Fatalf("Push = %v", err)
	}

	s, err := r.Take(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	r.Release(s)

	ctx, cancel = context.WithCancel(context.Background())
	taken := make(chan error, 1)
	go func() { _, err := r.Take(ctx); taken <- err }()
	waitFor(t, "Take to block", func() bool { return r.takeWaiters() == 1 })
	cancel()
	if err := recv(t, "Take", taken); !errors.Is(err, context.Canceled) {
		t.Fatalf("Take = %v", err)
	}
	// Already cancelled: Take does not wait.
	if _, err := r.Take(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Take = %v", err)
	}
	// The ring still works.
	if err := r.Push(context.Background(), seg(r, 2, 16), 0, nil); err != nil {
		t.Fatal(err)
	}
	if st := r.Stats(); st.Occupied != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestCloseNilDrainsThenEOF(t *testing.T) {
	r := New(4)
	ctx := context.Background()
	taken := make(chan error, 1)
	go func() { _, err := r.Take(ctx); taken <- err }()
	waitFor(t, "Take to block", func() bool { return r.takeWaiters() == 1 })
	r.Close(nil)
	if err := recv(t, "Take", taken); err != io.EOF {
		t.Fatalf("Take = %v, want io.EOF", err)
	}

	r = New(4)
	for i := range 3 {
		if err := r.Push(ctx, seg(r, i, 16), 0, nil); err != nil {
			t.Fatal(err)
		}
	}
	r.Close(nil)
	r.Close(errors.New("too late")) // first call wins
	if err := r.Push(ctx, seg(r, 3, 16), 0, nil); err != ErrClosed {
		t.Fatalf("Push after Close = %v", err)
	}
	for i := range 3 {
		s, err := r.Take(ctx)
		if err != nil {
			t.Fatal(err)
		}
		checkSeg(t, s, i, 16)
		r.Release(s)
	}
	for range 2 {
		if _, err := r.Take(ctx); err != io.EOF {
			t.Fatalf("Take = %v, want io.EOF", err)
		}
	}
	if r.Err() != nil {
		t.Fatalf("Err = %v", r.Err())
	}
}

func TestCloseErrorReachesConsumer(t *testing.T) {
	errStream := errors.New("walstream: server closed the connection")
	ctx := context.Background()

	// A blocked Take gets the producer's error.
	r := New(2)
	taken := make(chan error, 1)
	go func() { _, err := r.Take(ctx); taken <- err }()
	waitFor(t, "Take to block", func() bool { return r.takeWaiters() == 1 })
	r.Close(errStream)
	if err := recv(t, "Take", taken); err != errStream {
		t.Fatalf("Take = %v", err)
	}
	if r.Err() != errStream {
		t.Fatalf("Err = %v", r.Err())
	}

	// Queued segments are not returned: the backup has failed.
	r = New(2)
	for i := range 2 {
		if err := r.Push(ctx, seg(r, i, 16), 0, nil); err != nil {
			t.Fatal(err)
		}
	}
	r.Close(errStream)
	r.Close(nil) // first call wins
	if _, err := r.Take(ctx); err != errStream {
		t.Fatalf("Take = %v", err)
	}
	if got := r.TryTakeAll(nil); len(got) != 0 {
		t.Fatalf("TryTakeAll returned %d segments after Close(err)", len(got))
	}
	if r.Err() != errStream {
		t.Fatalf("Err = %v", r.Err())
	}
	if st := r.Stats(); st.Occupied != 0 || st.Queued != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestCloseUnblocksPush(t *testing.T) {
	r := New(1)
	ctx := context.Background()
	if err := r.Push(ctx, seg(r, 0, 16), 0, nil); err != nil {
		t.Fatal(err)
	}
	pushed := make(chan error, 1)
	go func() { pushed <- r.Push(ctx, seg(r, 1, 16), time.Hour, func() error { return nil }) }()
	waitFor(t, "Push to block", func() bool { return r.pushWaiters() == 1 })
	r.Close(nil)
	if err := recv(t, "Push", pushed); err != ErrClosed {
		t.Fatalf("Push = %v", err)
	}
	// The segment queued before Close is still delivered.
	s, err := r.Take(ctx)
	if err != nil {
		t.Fatal(err)
	}
	checkSeg(t, s, 0, 16)
	r.Release(s)
	if _, err := r.Take(ctx); err != io.EOF {
		t.Fatalf("Take = %v", err)
	}
}

func TestAbort(t *testing.T) {
	errWriter := errors.New("write backup: no space left on device")
	ctx := context.Background()
	r := New(2)
	for i := range 2 {
		if err := r.Push(ctx, seg(r, i, 16), 0, nil); err != nil {
			t.Fatal(err)
		}
	}
	held := r.TryTakeAll(nil) // the consumer holds both
	r.Release(held[0])
	if err := r.Push(ctx, seg(r, 2, 16), 0, nil); err != nil { // queued, dropped by Abort
		t.Fatal(err)
	}
	pushed := make(chan error, 1)
	go func() { pushed <- r.Push(ctx, seg(r, 3, 16), time.Hour, func() error { return nil }) }()
	waitFor(t, "Push to block", func() bool { return r.pushWaiters() == 1 })

	taken := make(chan error, 1)
	r2 := New(1)
	go func() { _, err := r2.Take(ctx); taken <- err }()
	waitFor(t, "Take to block", func() bool { return r2.takeWaiters() == 1 })

	r.Abort(errWriter)
	r.Abort(errors.New("second abort is ignored"))
	if err := recv(t, "Push", pushed); err != ErrClosed {
		t.Fatalf("Push = %v, want exactly ErrClosed", err)
	}
	if err := r.Push(ctx, seg(r, 4, 16), 0, nil); err != ErrClosed {
		t.Fatalf("later Push = %v", err)
	}
	if _, err := r.Take(ctx); err != errWriter {
		t.Fatalf("Take = %v", err)
	}
	if got := r.TryTakeAll(nil); len(got) != 0 {
		t.Fatalf("TryTakeAll after Abort: %d segments", len(got))
	}
	r.Release(held[1])
	if st := r.Stats(); st.Occupied != 0 {
		t.Fatalf("stats %+v", st)
	}
	if r.Err() != nil {
		t.Fatalf("Err = %v (the producer has not closed)", r.Err())
	}
	r.Close(ErrClosed)
	if r.Err() != ErrClosed {
		t.Fatalf("Err = %v", r.Err())
	}

	r2.Abort(nil)
	if err := recv(t, "Take", taken); err != ErrClosed {
		t.Fatalf("Take after Abort(nil) = %v", err)
	}
}

// releaseAll releases every segment in segs.
func (r *Ring) releaseAll(segs ...*Segment) {
	for _, s := range segs {
		r.Release(s)
	}
}

func TestBufferReuse(t *testing.T) {
	const capacity, size = 4, 4096
	r := New(capacity)
	ctx := context.Background()
	known := map[*byte]bool{}
	cycle := func(n int) {
		for i := range n {
			s := seg(r, i, size)
			known[&s.Data[0]] = true
			if err := r.Push(ctx, s, 0, nil); err != nil {
				t.Fatal(err)
			}
		}
		for _, s := range r.TryTakeAll(nil) {
			r.Release(s)
		}
	}
	cycle(capacity) // warm-up
	if n := len(known); n != capacity {
		t.Fatalf("%d distinct buffers after warm-up", n)
	}
	for range 50 {
		b := r.Buffer(size)
		if len(b) != size || !known[&b[0]] {
			t.Fatal("Buffer did not return a recycled buffer")
		}
		r.Release(&Segment{Kind: KindSegment, Data: b}) // never pushed: just recycled
		cycle(1 + rand.IntN(capacity))
	}
	if n := len(known); n != capacity {
		t.Fatalf("%d distinct buffers after reuse", n)
	}
	if st := r.Stats(); st.BuffersAllocated > capacity+2 {
		t.Fatalf("allocated %d buffers", st.BuffersAllocated)
	}

	// History data is not recycled as a segment buffer.
	h := r.NewSegment()
	h.Kind, h.Name, h.Data = KindHistory, "00000002.history", make([]byte, size)
	if err := r.Push(ctx, h, 0, nil); err != nil {
		t.Fatal(err)
	}
	hp := &h.Data[0]
	r.releaseAll(r.TryTakeAll(nil)...)
	for range capacity + 1 {
		if b := r.Buffer(size); &b[0] == hp {
			t.Fatal("history data recycled")
		}
	}

	// Buffers of another size are dropped, not returned.
	r = New(capacity)
	cycle(capacity)
	before := r.Stats().BuffersAllocated
	b := r.Buffer(size / 2)
	if len(b) != size/2 || known[&b[0]] || r.Stats().BuffersAllocated != before+1 {
		t.Fatal("Buffer of another size")
	}
	if b := r.Buffer(size); known[&b[0]] {
		t.Fatal("free buffers of another size were kept")
	}
}

func TestSteadyStateAllocs(t *testing.T) {
	const capacity = 4
	r := New(capacity)
	ctx := context.Background()
	dst := make([]*Segment, 0, capacity)
	run := func() {
		for range capacity {
			s := r.NewSegment()
			s.Kind = KindSegment
			s.Data = r.Buffer(64)
			if err := r.Push(ctx, s, 0, nil); err != nil {
				panic(err)
			}
		}
		dst = r.TryTakeAll(dst[:0])
		for _, s := range dst {
			r.Release(s)
		}
	}
	run() // warm-up
	if a := testing.AllocsPerRun(100, run); a != 0 {
		t.Fatalf("%v allocs per Push+TryTakeAll+Release cycle", a)
	}
	if st := r.Stats(); st.BuffersAllocated != capacity {
		t.Fatalf("allocated %d buffers", st.BuffersAllocated)
	}
}

func TestMisusePanics(t *testing.T) {
	ctx := context.Background()
	mustPanic := func(name string, f func()) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Errorf("%s did not panic", name)
			}
		}()
		f()
	}
	r := New(2)
	s := seg(r, 0, 16)
	if err := r.Push(ctx, s, 0, nil); err != nil {
		t.Fatal(err)
	}
	mustPanic("Push twice", func() { _ = r.Push(ctx, s, 0, nil) })
	mustPanic("Release of a queued segment", func() { r.Release(s) })
	mustPanic("Push(nil)", func() { _ = r.Push(ctx, nil, 0, nil) })
	got, _ := r.Take(ctx)
	r.Release(got)
	mustPanic("double Release", func() { r.Release(got) })
	r.Release(nil)
}
