package pgtest

import (
	"bytes"
	"os"
	"sync"
	"syscall"
)

// Invariant is a query that returns true when pgbench's consistency invariant holds: the sums
// of pgbench_accounts.abalance, pgbench_tellers.tbalance, pgbench_branches.bbalance and
// pgbench_history.delta are all equal.
const Invariant = `(select a = h and h = t and t = b from
	(select coalesce(sum(abalance), 0) a from pgbench_accounts) aa,
	(select coalesce(sum(delta), 0) h from pgbench_history) hh,
	(select coalesce(sum(tbalance), 0) t from pgbench_tellers) tt,
	(select coalesce(sum(bbalance), 0) b from pgbench_branches) bb)`

func fileUID(fi os.FileInfo) uint32 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Uid
	}
	return 0
}

// SyncBuffer is a bytes.Buffer that several goroutines may write to while a test reads it (a
// logger's output, a CLI's stderr).
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
