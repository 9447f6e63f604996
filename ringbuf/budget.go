package ringbuf

import "sync"

// Budget is a memory budget shared by several rings (one per server of a fleet backup): the
// bytes of the segments pushed into any of them and not yet released count against one limit,
// and a [Ring.Push] that would exceed it waits, as it waits for a free slot, until some ring
// releases a segment. Attach it with [Ring.SetBudget] before the first Push.
//
// A Push into a ring that holds no segment at all always proceeds, even over the limit: every
// ring can make progress on its own, so rings that wait for each other's consumers cannot
// deadlock, and a limit smaller than one segment still works. The memory held is therefore at
// most Limit plus one segment per ring (plus the buffer each producer is filling).
//
// All methods are safe for concurrent use.
type Budget struct {
	mu    sync.Mutex
	limit int64
	used  int64
	wait  chan struct{} // closed (and replaced) whenever bytes come back
	st    BudgetStats
}

// BudgetStats is a snapshot of a budget's counters, returned by [Budget.Stats].
type BudgetStats struct {
	Limit     int64 // the limit in bytes
	Used      int64 // bytes charged right now
	HighWater int64 // the most bytes ever charged at once
	Waits     int64 // how many times a Push found the budget exhausted and waited
	Overdraft int64 // how many Pushes went over the limit into an empty ring
}

// NewBudget returns a budget of limit bytes; limit <= 0 means no limit (the rings' slots are
// then their only bound).
func NewBudget(limit int64) *Budget {
	return &Budget{limit: limit, wait: make(chan struct{}), st: BudgetStats{Limit: limit}}
}

// Limit returns the limit in bytes (<= 0: none).
func (b *Budget) Limit() int64 { return b.limit }

// Stats returns a snapshot of the budget's counters.
func (b *Budget) Stats() BudgetStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.st
	s.Used = b.used
	return s
}

// acquire charges n bytes if they fit (or force is set) and returns true; otherwise it returns
// false and a channel that is closed when bytes come back.
func (b *Budget) acquire(n int64, force bool) (bool, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.limit > 0 && b.used+n > b.limit && !force {
		b.st.Waits++
		return false, b.wait
	}
	if b.limit > 0 && b.used+n > b.limit {
		b.st.Overdraft++
	}
	b.used += n
	if b.used > b.st.HighWater {
		b.st.HighWater = b.used
	}
	return true, nil
}

// release gives n bytes back and wakes every waiting Push.
func (b *Budget) release(n int64) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	b.used -= n
	close(b.wait)
	b.wait = make(chan struct{})
	b.mu.Unlock()
}
