package pgtest

import (
	"os"
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
