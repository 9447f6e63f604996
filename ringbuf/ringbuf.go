// Package ringbuf is the bounded FIFO of complete PostgreSQL WAL segments that sits between the
// WAL receiver and the backup writer.
//
// The WAL receiver (the single producer goroutine) obtains a segment buffer with [Ring.Buffer] and
// a [Segment] with [Ring.NewSegment], fills them, and hands them over with [Ring.Push]; when it is
// done it calls [Ring.Close] (nil for success, or the error that ended the stream).
//
// The backup writer (the single consumer goroutine) drains the ring without blocking at every tar
// member boundary with [Ring.TryTakeAll], blocks for the next segment with [Ring.Take] when it has
// to wait for the end of the WAL, and gives every segment back with [Ring.Release] once it has been
// written. If it gives up it calls [Ring.Abort], which makes a blocked or later Push return
// [ErrClosed].
//
// Memory bound: a slot counts as occupied from Push until Release, and Push blocks while all
// Capacity slots are occupied. Buffers and Segment structs are recycled, so the ring holds at most
// Capacity x segment size bytes of segment data plus the one buffer the producer is filling
// (Capacity+1 buffers in all when the producer fills one buffer at a time), and that memory is only
// allocated when WAL actually queues up. In steady state a Push / TryTakeAll / Release cycle does
// not allocate.
//
// Shared memory: with [Ring.SetBudget] several rings (a fleet backup's, one per server) also
// charge their pushed segments to one [Budget]; a Push waits for budget as it waits for a slot.
//
// All methods are safe for concurrent use. One mutex guards the state; waiting uses two
// one-token signal channels ("room" and "data") plus a channel closed on Close or Abort, so waits
// can also end on context cancellation or on Push's periodic wake-up timer. Nothing spins or polls.
package ringbuf

import (
	"context"
	"errors"
	"io"
	"strconv"
	"sync"
	"time"
)

// DefaultSlots is the capacity, in segments, that [New] uses when given slots <= 0.
// With the default 16 MiB segment size that bounds queued WAL at 384 MiB.
const DefaultSlots = 24

// Kind says what a [Segment] carries.
type Kind uint8

const (
	// KindSegment is a full WAL segment: Data has the full segment size and normally comes from
	// [Ring.Buffer], to which it returns on [Ring.Release].
	KindSegment Kind = iota
	// KindHistory is a timeline history file (small, e.g. "00000002.history"). Its Data is not
	// recycled.
	KindHistory
)

// String returns "segment", "history" or "Kind(n)".
func (k Kind) String() string {
	switch k {
	case KindSegment:
		return "segment"
	case KindHistory:
		return "history"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// segment life-cycle states (Segment.state); they catch misuse such as a double Release.
const (
	stateFresh  uint8 = iota // owned by the producer, not pushed (zero value: &Segment{} is fresh)
	stateQueued              // in the ring, not taken yet
	stateTaken               // taken by the consumer, not released yet
	stateFree                // in the ring's free list
)

// Segment is one unit handed from producer to consumer.
//
// A Segment may be allocated by the caller or obtained from [Ring.NewSegment]. After
// [Ring.Release] the struct and (for KindSegment) its Data belong to the ring again and must not
// be used.
type Segment struct {
	Kind     Kind
	Name     string // file name under pg_wal/, e.g. "000000010000000000000003" or "00000002.history"
	Timeline uint32
	StartLSN uint64 // LSN of the first byte of the segment (0 for history files)
	Data     []byte // contents; for KindSegment a buffer obtained from Ring.Buffer

	state   uint8
	charged int64 // bytes charged to the ring's Budget while pushed
}

// Stats is a snapshot of a ring's counters, returned by [Ring.Stats].
type Stats struct {
	Pushed, Taken    int64         // counts of segments
	PushedBytes      int64         // sum of len(Data) over pushed segments
	HighWater        int           // max slots ever occupied
	BlockedTime      time.Duration // total time Push spent waiting for room
	Blocks           int64         // how many Push calls had to wait
	Occupied         int           // slots occupied right now (pushed and not yet released)
	Capacity         int           // number of slots
	Queued           int           // segments pushed and not yet taken
	BuffersAllocated int64         // buffers Buffer had to allocate (not recycled)
	Wakeups          int64         // onWake calls made by blocked Push calls
	BudgetWaits      int64         // times a Push waited for the shared Budget (not for a slot)
}

// ErrClosed is returned by [Ring.Push] once the ring has been closed by the producer
// ([Ring.Close]) or aborted by the consumer ([Ring.Abort]). It is returned unwrapped.
var ErrClosed = errors.New("ringbuf: ring closed")

// Ring is a bounded FIFO of WAL segments between one producer and one consumer. Create it with
// [New]; the zero value is not usable.
type Ring struct {
	mu sync.Mutex

	capacity int
	q        []*Segment // circular queue, len(q) == capacity
	head, n  int        // index of the oldest queued segment; number queued
	occupied int        // pushed and not released (queued + taken)

	closed   bool  // Close was called
	prodErr  error // error passed to the first Close
	aborted  bool  // Abort was called
	takeErr  error // first error Take reports: from Close(err != nil) or Abort; nil otherwise
	doneOnce bool  // done has been closed

	done    chan struct{} // closed by the first Close or Abort
	room    chan struct{} // one-token signal: a slot was freed
	data    chan struct{} // one-token signal: a segment was queued
	pushW   int           // Push calls waiting on room
	takeW   int           // Take calls waiting on data
	timer   *time.Timer   // cached wake-up timer for Push (nil while in use)
	bufFree [][]byte      // recycled segment buffers
	segFree []*Segment    // recycled Segment structs
	budget  *Budget       // shared memory budget, or nil

	st Stats
}

// New returns an empty ring with the given number of slots; slots <= 0 means [DefaultSlots].
// It allocates no segment buffers: those are allocated on demand by [Ring.Buffer] and recycled.
func New(slots int) *Ring {
	if slots <= 0 {
		slots = DefaultSlots
	}
	return &Ring{
		capacity: slots,
		q:        make([]*Segment, slots),
		done:     make(chan struct{}),
		room:     make(chan struct{}, 1),
		data:     make(chan struct{}, 1),
		bufFree:  make([][]byte, 0, slots+1),
		segFree:  make([]*Segment, 0, slots+2),
		st:       Stats{Capacity: slots},
	}
}

// SetBudget makes the ring charge the bytes of every pushed segment to b until it is released
// (see [Budget]); nil detaches. Call it before the first Push.
func (r *Ring) SetBudget(b *Budget) {
	r.mu.Lock()
	r.budget = b
	r.mu.Unlock()
}

// Capacity returns the number of slots.
func (r *Ring) Capacity() int { return r.capacity }

// Buffer returns a buffer of exactly size bytes (len == size) for the producer to fill. It is a
// recycled buffer (one given back through [Ring.Release] of a KindSegment segment) when one of
// that size is free, otherwise a newly allocated one. Free buffers of another size are dropped.
//
// The contents of a recycled buffer are NOT zeroed: they are a previous segment's bytes. A
// producer that does not overwrite every byte must clear the rest itself (e.g. clear(buf[n:])).
func (r *Ring) Buffer(size int) []byte {
	r.mu.Lock()
	for len(r.bufFree) > 0 {
		i := len(r.bufFree) - 1
		b := r.bufFree[i]
		r.bufFree[i] = nil
		r.bufFree = r.bufFree[:i]
		if cap(b) == size {
			r.mu.Unlock()
			return b[:size]
		}
	}
	r.st.BuffersAllocated++
	r.mu.Unlock()
	return make([]byte, size)
}

// NewSegment returns a zeroed *Segment for the producer to fill and Push, recycled from a
// released one when possible (so it does not allocate in steady state). Its Data is nil: set it
// to a buffer from [Ring.Buffer] (KindSegment) or to the file's contents (KindHistory). Using
// NewSegment is optional; Push accepts any *Segment the caller owns.
func (r *Ring) NewSegment() *Segment {
	r.mu.Lock()
	if i := len(r.segFree) - 1; i >= 0 {
		s := r.segFree[i]
		r.segFree[i] = nil
		r.segFree = r.segFree[:i]
		r.mu.Unlock()
		s.state = stateFresh
		return s
	}
	r.mu.Unlock()
	return new(Segment)
}

// Push appends seg to the ring; from then on seg belongs to the ring and the consumer. It blocks
// while the ring is full, i.e. while Capacity segments have been pushed and not yet released.
//
// While blocked, every wake interval (if wake > 0 and onWake != nil) it calls onWake without
// holding the ring's lock, so the WAL receiver can send status updates to the server; an error
// from onWake aborts the Push and is returned as is. onWake is never called when Push does not
// have to wait.
//
// Push returns nil once seg is queued, ctx.Err() if ctx is done while it waits, and [ErrClosed]
// if the ring was closed (by [Ring.Close] or [Ring.Abort]) before seg could be queued. When Push
// returns an error seg still belongs to the caller (it may give it back with [Ring.Release]).
// Push panics if seg is nil or already pushed.
func (r *Ring) Push(ctx context.Context, seg *Segment, wake time.Duration, onWake func() error) error {
	if seg == nil {
		panic("ringbuf: Push of nil segment")
	}
	r.mu.Lock()
	if seg.state != stateFresh {
		r.mu.Unlock()
		panic("ringbuf: Push of a segment that was already pushed or released")
	}
	if r.closed || r.aborted {
		r.mu.Unlock()
		return ErrClosed
	}
	ok, budgetWait := r.fits(seg)
	if ok {
		r.enqueue(seg)
		r.mu.Unlock()
		return nil
	}
	return r.pushSlow(ctx, seg, budgetWait, wake, onWake)
}

// fits reports whether seg may be queued now: a free slot and, with a budget, its bytes
// charged (always, into an empty ring). When the budget is what is missing it returns the
// channel that signals returned bytes. r.mu is held.
func (r *Ring) fits(seg *Segment) (bool, <-chan struct{}) {
	if r.occupied >= r.capacity {
		return false, nil
	}
	if r.budget == nil {
		return true, nil
	}
	n := int64(len(seg.Data))
	ok, wait := r.budget.acquire(n, r.occupied == 0)
	if ok {
		seg.charged = n
	}
	return ok, wait
}

// pushSlow waits for room. It is called with r.mu held and returns with it released.
func (r *Ring) pushSlow(ctx context.Context, seg *Segment, budgetWait <-chan struct{}, wake time.Duration, onWake func() error) error {
	start := time.Now()
	r.st.Blocks++
	var t *time.Timer
	var tick <-chan time.Time
	if wake > 0 && onWake != nil {
		t, r.timer = r.timer, nil
		if t == nil {
			t = time.NewTimer(wake)
		} else {
			t.Reset(wake)
		}
		tick = t.C
	}
	var err error
	budgetCounted := false
	for {
		if budgetWait != nil && !budgetCounted {
			r.st.BudgetWaits++
			budgetCounted = true
		}
		r.pushW++
		r.mu.Unlock()
		woke := false
		select {
		case <-r.room:
		case <-budgetWait:
		case <-r.done:
		case <-ctx.Done():
		case <-tick:
			woke = true
		}
		if woke {
			err = onWake() // without the lock
			if err == nil {
				t.Reset(wake)
			}
		}
		r.mu.Lock()
		r.pushW--
		if woke {
			r.st.Wakeups++
		}
		if err != nil {
			break
		}
		if r.closed || r.aborted {
			err = ErrClosed
			break
		}
		ok, wait := r.fits(seg)
		if ok {
			r.enqueue(seg)
			if r.pushW > 0 && r.occupied < r.capacity {
				signal(r.room) // pass the token on to another waiting Push
			}
			break
		}
		budgetWait = wait
		if err = ctx.Err(); err != nil {
			break
		}
	}
	r.st.BlockedTime += time.Since(start)
	if t != nil {
		t.Stop()
		if r.timer == nil {
			r.timer = t
		}
	}
	r.mu.Unlock()
	return err
}

// enqueue appends seg; r.mu is held and there is room.
func (r *Ring) enqueue(seg *Segment) {
	seg.state = stateQueued
	r.q[(r.head+r.n)%r.capacity] = seg
	r.n++
	r.occupied++
	r.st.Pushed++
	r.st.PushedBytes += int64(len(seg.Data))
	if r.occupied > r.st.HighWater {
		r.st.HighWater = r.occupied
	}
	if r.takeW > 0 {
		signal(r.data)
	}
}

// dequeue removes and returns the oldest queued segment; r.mu is held and r.n > 0.
func (r *Ring) dequeue() *Segment {
	seg := r.q[r.head]
	r.q[r.head] = nil
	r.head = (r.head + 1) % r.capacity
	r.n--
	seg.state = stateTaken
	r.st.Taken++
	return seg
}

// signal leaves a token in a one-token channel unless one is already there.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// TryTakeAll appends every queued segment to dst, oldest first, without blocking and returns the
// extended slice (used at tar member boundaries). It does not allocate when dst has enough
// capacity. After the producer's Close(err) with err != nil, or after Abort, it returns dst
// unchanged. Every segment taken must be given back with [Ring.Release].
func (r *Ring) TryTakeAll(dst []*Segment) []*Segment {
	r.mu.Lock()
	if r.takeErr == nil {
		for r.n > 0 {
			dst = append(dst, r.dequeue())
		}
	}
	r.mu.Unlock()
	return dst
}

// Take waits for the next segment and returns it; it must be given back with [Ring.Release].
//
// It returns (nil, io.EOF) when the producer called Close(nil) and every segment has been taken.
// When the producer called Close(err) with err != nil it returns (nil, err) at once, without the
// segments still queued: the backup has failed. After [Ring.Abort] it returns the abort error.
// It returns ctx.Err() if ctx is done while it waits.
func (r *Ring) Take(ctx context.Context) (*Segment, error) {
	r.mu.Lock()
	for {
		if r.takeErr != nil {
			err := r.takeErr
			r.mu.Unlock()
			return nil, err
		}
		if r.n > 0 {
			seg := r.dequeue()
			if r.n > 0 && r.takeW > 0 {
				signal(r.data) // pass the token on to another waiting Take
			}
			r.mu.Unlock()
			return seg, nil
		}
		if r.closed {
			r.mu.Unlock()
			return nil, io.EOF
		}
		if err := ctx.Err(); err != nil {
			r.mu.Unlock()
			return nil, err
		}
		r.takeW++
		r.mu.Unlock()
		select {
		case <-r.data:
		case <-r.done:
		case <-ctx.Done():
		}
		r.mu.Lock()
		r.takeW--
	}
}

// Release gives a taken segment's slot and buffer back to the ring. A slot counts as occupied
// from Push until Release; releasing wakes a blocked Push. For KindSegment the Data buffer is kept
// for [Ring.Buffer]; the Segment struct is kept for [Ring.NewSegment]. seg and its Data must not
// be used afterwards.
//
// Release of a segment that was never pushed (for instance after Push returned an error) just
// recycles it. Release(nil) does nothing. Release panics on a segment that is still queued or was
// already released.
func (r *Ring) Release(seg *Segment) {
	if seg == nil {
		return
	}
	r.mu.Lock()
	switch seg.state {
	case stateQueued:
		r.mu.Unlock()
		panic("ringbuf: Release of a segment that was not taken")
	case stateFree:
		r.mu.Unlock()
		panic("ringbuf: Release of a segment that was already released")
	case stateTaken:
		r.occupied--
		r.uncharge(seg)
		if r.pushW > 0 {
			signal(r.room)
		}
	}
	r.recycle(seg)
	r.mu.Unlock()
}

// uncharge gives seg's bytes back to the budget; r.mu is held.
func (r *Ring) uncharge(seg *Segment) {
	if seg.charged != 0 && r.budget != nil {
		r.budget.release(seg.charged)
	}
	seg.charged = 0
}

// recycle puts seg and its buffer on the free lists; r.mu is held.
func (r *Ring) recycle(seg *Segment) {
	failed := r.takeErr != nil
	if seg.Kind == KindSegment && cap(seg.Data) > 0 && !failed && len(r.bufFree) < r.capacity+1 {
		r.bufFree = append(r.bufFree, seg.Data[:cap(seg.Data)])
	}
	*seg = Segment{state: stateFree}
	if !failed && len(r.segFree) < r.capacity+2 {
		r.segFree = append(r.segFree, seg)
	}
}

// Close is called by the producer when it is done. err == nil means "no more segments, all
// good": the consumer takes what is queued and then gets io.EOF. err != nil means the WAL stream
// failed: Take returns err at once, the queued segments are dropped, and [Ring.Err] reports err.
// A blocked or later Push returns [ErrClosed]. Close is idempotent; the first call wins.
func (r *Ring) Close(err error) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	r.prodErr = err
	if err != nil {
		r.fail(err)
	}
	r.finish()
	r.mu.Unlock()
}

// Abort is called by the consumer when it gives up; err describes why. A blocked or later Push
// returns [ErrClosed] (unwrapped), Take returns err (ErrClosed if err is nil), and the queued
// segments are dropped. Segments already taken may still be released. Abort is idempotent; the
// first call wins.
func (r *Ring) Abort(err error) {
	r.mu.Lock()
	if r.aborted {
		r.mu.Unlock()
		return
	}
	r.aborted = true
	if err == nil {
		err = ErrClosed
	}
	r.fail(err)
	r.finish()
	r.mu.Unlock()
}

// fail records the consumer-visible error (the first one wins), drops the queued segments and the
// free buffers; r.mu is held.
func (r *Ring) fail(err error) {
	if r.takeErr != nil {
		return
	}
	r.takeErr = err
	for r.n > 0 {
		seg := r.q[r.head]
		r.q[r.head] = nil
		r.head = (r.head + 1) % r.capacity
		r.n--
		r.occupied--
		r.uncharge(seg)
		r.recycle(seg)
	}
	clear(r.bufFree)
	r.bufFree = r.bufFree[:0]
}

// finish wakes every waiter; r.mu is held.
func (r *Ring) finish() {
	if !r.doneOnce {
		r.doneOnce = true
		close(r.done)
	}
}

// Err returns the error the producer passed to [Ring.Close]: nil if it closed cleanly or has not
// closed yet.
func (r *Ring) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.prodErr
}

// Stats returns a snapshot of the ring's counters.
func (r *Ring) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.st
	s.Occupied = r.occupied
	s.Queued = r.n
	return s
}
