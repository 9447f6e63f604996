package pgrepl

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"
)

const (
	// DefaultBatchLowWater is the SO_RCVLOWAT a BatchedConn sets by default: the kernel wakes
	// the reader when this many bytes are queued rather than at every 8 KiB segment a
	// walsender sends.
	DefaultBatchLowWater = 1 << 20

	// batchWait bounds how long bytes below the low-water mark wait in the socket: after it, a
	// read takes whatever has arrived (the end of the stream, a pause while the server reads a
	// cold file, a slow network).
	batchWait = 5 * time.Millisecond
)

// BatchedConn reads a socket in large batches while a copy stream runs (the BASE_BACKUP
// stream of connection A).
//
// A walsender on PostgreSQL 15 and 16 writes its 32 KiB CopyData messages through an 8 KiB
// buffer, so on a fast link it sends 8 KiB segments, and a reader that keeps up is woken for
// nearly every one: each wake is a context switch on both sides plus the Go netpoller's
// scheduling. Measured on the bench's 1.5 GiB backup over loopback (2 cores), that was ~60k
// context switches and ~2 s of client CPU; with SO_RCVLOWAT at 1 MiB it is ~9k and ~0.6 s (see
// bench/README.md). Reads on a non-blocking socket still return whatever is queued, so only
// the wait for readiness changes; a read deadline of batchWait makes sure bytes below the mark
// are taken in time, and the cancellation watcher (which moves the deadline into the past) is
// honoured because a timeout is only retried while ctx is live.
//
// Sockets that are not TCP (a Unix-domain socket) are read as they are.
type BatchedConn struct {
	ctx      context.Context
	conn     net.Conn
	lowWater int
	refused  bool // the socket took no low-water mark: read unbatched
	active   bool // low-water mark set
	// stall, when set, bounds the wait in one Read for a first byte (SetStallTimeout).
	stall time.Duration
}

// StalledError is returned by a BatchedConn's Read when no byte arrived for the stall timeout.
type StalledError struct{ Silent time.Duration }

func (e *StalledError) Error() string {
	return fmt.Sprintf("the server sent nothing for %v (progress timeout): the walsender hangs (stopped, or blocked on the server) or a proxy holds the connection without forwarding; check the server, then run the backup again", e.Silent.Round(time.Millisecond))
}

// Timeout reports false: a stall is not a deadline of the caller's to retry after.
func (e *StalledError) Timeout() bool { return false }

// SetStallTimeout makes a Read that waits d with no byte arriving return a *StalledError
// (0 turns it off). Time spent outside Read, while the caller works, does not count.
func (c *BatchedConn) SetStallTimeout(d time.Duration) {
	c.stall = d
	if d <= 0 && !c.active {
		c.setReadDeadline(time.Time{})
	}
}

// NewBatchedConn reads conn; cancelling ctx must also move conn's deadline into the past (the
// caller's cancellation watcher does that), which ends a batched wait at once.
func NewBatchedConn(ctx context.Context, conn net.Conn) *BatchedConn {
	return &BatchedConn{ctx: ctx, conn: conn, lowWater: DefaultBatchLowWater}
}

// Batch turns batching on (during the copy stream) or off. It reports whether the socket
// takes a low-water mark; a socket that refuses it (not TCP) is read unbatched.
func (c *BatchedConn) Batch(on bool) bool {
	if c.refused || c.active == on {
		return c.active == on
	}
	lowat := 1
	if on {
		lowat = c.lowWater
	}
	if !SetRecvLowWater(c.conn, lowat) {
		c.refused, c.active = true, false
		return false
	}
	c.active = on
	if !on {
		c.setReadDeadline(time.Time{})
	}
	return true
}

// setReadDeadline sets the read deadline unless ctx has ended: then the cancellation watcher's
// deadline in the past stays.
func (c *BatchedConn) setReadDeadline(t time.Time) {
	_ = c.conn.SetReadDeadline(t)
	if c.ctx.Err() != nil {
		_ = c.conn.SetReadDeadline(time.Unix(1, 0))
	}
}

func (c *BatchedConn) Read(p []byte) (int, error) {
	if !c.active && c.stall <= 0 {
		return c.conn.Read(p)
	}
	begin := time.Now()
	for {
		start := time.Now()
		var deadline time.Time
		if c.active {
			deadline = start.Add(batchWait)
		}
		if c.stall > 0 {
			if limit := begin.Add(c.stall); deadline.IsZero() || limit.Before(deadline) {
				deadline = limit
			}
		}
		c.setReadDeadline(deadline)
		n, err := c.conn.Read(p)
		// Only our own deadline is retried: a kernel ETIMEDOUT (keepalive or user timeout),
		// which net.Error.Timeout reports too, is the connection's end.
		if n == 0 && err != nil && errors.Is(err, os.ErrDeadlineExceeded) && c.ctx.Err() == nil {
			if c.stall > 0 && time.Since(begin) >= c.stall {
				return 0, &StalledError{Silent: time.Since(begin)}
			}
			if time.Since(start) < batchWait/2 {
				return n, err
			}
			// Nothing yet, or less than the mark: the next read takes what is there. (A timeout
			// that came back at once is a sticky error of a layer above the socket: returned.)
			continue
		}
		return n, err
	}
}
