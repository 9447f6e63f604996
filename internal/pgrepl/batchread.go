package pgrepl

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"
)

const (
	// DefaultBatchLowWater is the SO_RCVLOWAT a BatchedConn sets by default: the kernel wakes
	// the reader when this many bytes are queued rather than at every 8 KiB segment a
	// walsender sends.
	DefaultBatchLowWater = 1 << 20

	// DefaultBatchWait bounds how long bytes below the low-water mark wait in the socket: after
	// it, a read takes whatever has arrived (the end of the stream, a pause while the server
	// reads a cold file, a slow network).
	DefaultBatchWait = 5 * time.Millisecond
)

// BatchedConn reads a socket in large batches while a stream runs: the BASE_BACKUP copy stream
// of connection A (1 MiB at a time), and the WAL stream of connection B (256 KiB), which reads
// it under pgconn (walstream.Connect puts it there with pgconn's AfterNetConnect).
//
// A walsender on PostgreSQL 15 and 16 writes its 32 KiB CopyData messages through an 8 KiB
// buffer, so on a fast link it sends 8 KiB segments, and a reader that keeps up is woken for
// nearly every one: each wake is a context switch on both sides plus the Go netpoller's
// scheduling. Measured on the bench's 1.5 GiB backup over loopback (2 cores), that was ~60k
// context switches and ~2 s of client CPU; with SO_RCVLOWAT at 1 MiB it is ~9k and ~0.6 s (see
// bench/README.md). Reads on a non-blocking socket still return whatever is queued, so only
// the wait for readiness changes; a read deadline of the batch wait makes sure bytes below the
// mark are taken in time. The caller's own read deadline (SetReadDeadline: the WAL receiver's
// next status update, a cancellation watcher's deadline in the past) is kept apart from those
// waits: when it passes, Read returns the timeout as an unbatched read would.
//
// Sockets that are not TCP (a Unix-domain socket) are read as they are.
type BatchedConn struct {
	ctx      context.Context
	conn     net.Conn
	lowWater int
	wait     time.Duration
	refused  bool // the socket took no low-water mark: read unbatched
	active   bool // low-water mark set
	// stall, when set, bounds the wait in one Read for a first byte (SetStallTimeout).
	stall time.Duration

	mu    sync.Mutex // orders the caller's deadline against Read's own
	outer time.Time  // the caller's read deadline (zero: none)

	vec vectorState // ReadVector's (readv_linux.go)
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

// NewBatchedConn reads conn with the default low-water mark and batch wait. Cancelling ctx
// (nil: never cancelled) must also move the read deadline into the past (the caller's
// cancellation watcher does that), which ends a batched wait at once.
func NewBatchedConn(ctx context.Context, conn net.Conn) *BatchedConn {
	return NewBatchedConnSize(ctx, conn, DefaultBatchLowWater, DefaultBatchWait)
}

// NewBatchedConnSize is NewBatchedConn with the low-water mark and the batch wait given.
func NewBatchedConnSize(ctx context.Context, conn net.Conn, lowWater int, wait time.Duration) *BatchedConn {
	if ctx == nil {
		ctx = context.Background()
	}
	return &BatchedConn{ctx: ctx, conn: conn, lowWater: lowWater, wait: wait}
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
		c.mu.Lock()
		c.setReadDeadline(c.outer)
		c.mu.Unlock()
	}
	return true
}

// SetLowWater changes the low-water mark to n bytes (at least 1): on the socket at once while
// batching, else at the next Batch(true). The kernel caps it at half the largest receive
// buffer it allows (net.ipv4.tcp_rmem). A reader that knows how many bytes are on their way
// (the --jobs readers: the results of the queries in flight) waits for all of them at once.
func (c *BatchedConn) SetLowWater(n int) {
	n = max(n, 1)
	if n == c.lowWater {
		return
	}
	c.lowWater = n
	if c.active && !c.refused && !SetRecvLowWater(c.conn, n) {
		c.refused, c.active = true, false
	}
}

// Batching reports whether the low-water mark is set.
func (c *BatchedConn) Batching() bool { return c.active }

// setReadDeadline sets the socket's read deadline unless ctx has ended: then the cancellation
// watcher's deadline in the past stays.
func (c *BatchedConn) setReadDeadline(t time.Time) {
	_ = c.conn.SetReadDeadline(t)
	if c.ctx.Err() != nil {
		_ = c.conn.SetReadDeadline(time.Unix(1, 0))
	}
}

// SetReadDeadline sets the caller's read deadline; a Read waiting past it returns the timeout.
func (c *BatchedConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.outer = t
	return c.conn.SetReadDeadline(t)
}

// SetDeadline sets the read deadline as SetReadDeadline does, and the write deadline.
func (c *BatchedConn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.conn.SetWriteDeadline(t)
}

// SetWriteDeadline sets the socket's write deadline.
func (c *BatchedConn) SetWriteDeadline(t time.Time) error { return c.conn.SetWriteDeadline(t) }

// Write writes to the socket.
func (c *BatchedConn) Write(p []byte) (int, error) { return c.conn.Write(p) }

// Close closes the socket.
func (c *BatchedConn) Close() error { return c.conn.Close() }

// LocalAddr returns the socket's local address.
func (c *BatchedConn) LocalAddr() net.Addr { return c.conn.LocalAddr() }

// RemoteAddr returns the socket's remote address.
func (c *BatchedConn) RemoteAddr() net.Addr { return c.conn.RemoteAddr() }

// NetConn returns the socket under c (as tls.Conn.NetConn does).
func (c *BatchedConn) NetConn() net.Conn { return c.conn }

// Read reads what the socket holds, waiting for a batch while batching.
func (c *BatchedConn) Read(p []byte) (int, error) { return c.read(p, nil) }

// MaxReadVectors is the most slices one ReadVector call fills; more are left unread.
const MaxReadVectors = 64

// ReadVector reads into bufs in order, the first filled first, in one system call (readv(2))
// where the socket allows it: a TCP socket on Linux. It waits as Read does and returns the
// bytes read into all of them. Elsewhere, or under TLS, it reads into the first non-empty one
// alone. bufs[0] must not be empty; empty slices after it are skipped, and slices past the
// MaxReadVectors-th are not read into. MessageReader uses it to read a value into its
// destination and the next message's header into its buffer at once, or several rows.
func (c *BatchedConn) ReadVector(bufs [][]byte) (int, error) {
	if len(bufs) == 0 || len(bufs[0]) == 0 {
		return 0, nil
	}
	if len(bufs) == 1 || !c.vectored() {
		return c.read(bufs[0], nil)
	}
	return c.read(nil, bufs)
}

// readOnce is one read of the socket: into p, or readv into bufs.
func (c *BatchedConn) readOnce(p []byte, bufs [][]byte) (int, error) {
	if bufs == nil {
		return c.conn.Read(p)
	}
	return c.readv(bufs)
}

// read is Read and ReadVector.
func (c *BatchedConn) read(p []byte, bufs [][]byte) (int, error) {
	if !c.active && c.stall <= 0 {
		return c.readOnce(p, bufs)
	}
	begin := time.Now()
	for {
		start := time.Now()
		var deadline time.Time
		if c.active {
			deadline = start.Add(c.wait)
		}
		if c.stall > 0 {
			if limit := begin.Add(c.stall); deadline.IsZero() || limit.Before(deadline) {
				deadline = limit
			}
		}
		c.mu.Lock()
		outer := c.outer
		if !outer.IsZero() && (deadline.IsZero() || outer.Before(deadline)) {
			deadline = outer
		}
		c.setReadDeadline(deadline)
		c.mu.Unlock()
		n, err := c.readOnce(p, bufs)
		// Only our own deadline is retried: a kernel ETIMEDOUT (keepalive or user timeout),
		// which net.Error.Timeout reports too, is the connection's end.
		if n == 0 && err != nil && errors.Is(err, os.ErrDeadlineExceeded) && c.ctx.Err() == nil {
			c.mu.Lock()
			outer = c.outer
			c.mu.Unlock()
			if !outer.IsZero() && !time.Now().Before(outer) {
				return n, err // the caller's deadline
			}
			if c.stall > 0 && time.Since(begin) >= c.stall {
				return 0, &StalledError{Silent: time.Since(begin)}
			}
			if time.Since(start) < c.wait/2 {
				// A timeout that came back at once is a sticky error of a layer above the
				// socket: returned.
				return n, err
			}
			// Nothing yet, or less than the mark: the next read takes what is there.
			continue
		}
		return n, err
	}
}
