package pgtest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"
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

// BackupUnderWay reports whether a backup of c is under way: a walsender sending a base backup
// and one streaming WAL (pg_stat_replication's states "backup" and "streaming").
func (c *Cluster) BackupUnderWay(ctx context.Context) (bool, error) {
	n, err := c.QueryValueDB(ctx, "postgres", "select count(*) from pg_stat_replication where state in ('backup', 'streaming')")
	return n == "2", err
}

// Acted is what WhenBackupsUnderWay reports: when the action ran, and its error (or the
// wait's).
type Acted struct {
	At  time.Time
	Err error
}

// WhenBackupsUnderWay waits in a goroutine until a backup of every cluster in cs is under way
// (BackupUnderWay, polled for at most timeout), then runs act. The result comes back on the
// channel, for the test's own goroutine to check: t.Fatal is for that goroutine only.
func WhenBackupsUnderWay(cs []*Cluster, timeout time.Duration, act func() error) <-chan Acted {
	ch := make(chan Acted, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		for _, c := range cs {
			for {
				ok, err := c.BackupUnderWay(ctx)
				if err != nil {
					ch <- Acted{Err: fmt.Errorf("pgtest: waiting for a backup of %s to be under way: %w", c.DataDir, err)}
					return
				}
				if ok {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		ch <- Acted{At: time.Now(), Err: act()}
	}()
	return ch
}

// TerminateWALSender ends c's walsender that streams WAL (pg_terminate_backend).
func (c *Cluster) TerminateWALSender() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return c.ExecContext(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_replication WHERE state = 'streaming'")
}
