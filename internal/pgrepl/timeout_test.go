package pgrepl

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// keepaliveDeathConn delivers part of a message, then fails as a socket does when TCP
// keepalive or TCP_USER_TIMEOUT ends the connection (after a wait: ETIMEDOUT), then reads
// EOF, as a socket does after that error.
type keepaliveDeathConn struct {
	net.Conn
	reads int
}

func (c *keepaliveDeathConn) Read(p []byte) (int, error) {
	c.reads++
	switch c.reads {
	case 1:
		return copy(p, []byte{'d', 0, 0, 0, 100, 'x'}), nil
	case 2:
		time.Sleep(20 * time.Millisecond)
		return 0, &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ETIMEDOUT)}
	}
	return 0, io.EOF
}

// TestBatchedConnKernelTimeout: a keepalive or user timeout of the
// kernel mid-message is reported as a timed-out connection, not taken for the batch reader's
// own read deadline and then reported as "connection closed inside a message".
func TestBatchedConnKernelTimeout(t *testing.T) {
	client, _ := socketPair(t, "tcp", "127.0.0.1:0")
	bc := NewBatchedConn(context.Background(), &keepaliveDeathConn{Conn: client})
	bc.active = true
	_, _, err := NewMessageReader(bc, 64).Next()
	if !TimedOut(err) || IsDeadline(err) {
		t.Fatalf("err = %v, want ETIMEDOUT", err)
	}
	if strings.Contains(err.Error(), "closed inside") || errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("err = %v, reported as a closed connection", err)
	}
	if !IsDeadline(os.ErrDeadlineExceeded) || TimedOut(os.ErrDeadlineExceeded) {
		t.Fatal("a read deadline is not told from ETIMEDOUT")
	}
}

// TestBatchedConnStall: a read that gets no byte for the stall timeout fails,
// batched or not.
func TestBatchedConnStall(t *testing.T) {
	client, _ := socketPair(t, "tcp", "127.0.0.1:0")
	for _, batched := range []bool{false, true} {
		bc := NewBatchedConn(context.Background(), client)
		bc.Batch(batched)
		bc.SetStallTimeout(300 * time.Millisecond)
		start := time.Now()
		err := readWithin(t, bc, 5*time.Second)
		var st *StalledError
		if !errors.As(err, &st) {
			t.Fatalf("batched %v: err = %v, want a stall", batched, err)
		}
		if took := time.Since(start); took < 300*time.Millisecond || took > 2*time.Second {
			t.Fatalf("batched %v: stall reported after %v", batched, took)
		}
		bc.Batch(false)
		bc.SetStallTimeout(0)
	}
}
