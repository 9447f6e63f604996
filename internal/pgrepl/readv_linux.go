package pgrepl

import (
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// vectorState is a BatchedConn's readv state, kept in the connection so that a ReadVector
// allocates nothing (the raw connection's callback is made once).
type vectorState struct {
	checked bool
	raw     syscall.RawConn // nil: the connection is not a TCP socket, ReadVector reads the first slice alone
	iov     [MaxReadVectors]syscall.Iovec
	niov    int
	call    func(fd uintptr) bool // readvFD, as a func value made once
	n       int
	err     error
}

// vectored reports whether the connection under c is a TCP socket that readv can read. Only
// the socket itself qualifies: under TLS (or any other layer) the bytes on it are not the
// stream's.
func (c *BatchedConn) vectored() bool {
	v := &c.vec
	if !v.checked {
		v.checked = true
		if tcp, ok := c.conn.(*net.TCPConn); ok {
			if raw, err := tcp.SyscallConn(); err == nil {
				v.raw = raw
				v.call = c.readvFD
			}
		}
	}
	return v.raw != nil
}

// readv reads into bufs (at most MaxReadVectors, the first non-empty) with one readv(2),
// waiting for the socket to be readable through the runtime's poller (deadlines apply as to
// Read). Empty slices are left out.
func (c *BatchedConn) readv(bufs [][]byte) (int, error) {
	v := &c.vec
	v.niov = 0
	for _, b := range bufs {
		if len(b) == 0 {
			continue
		}
		if v.niov == len(v.iov) {
			break
		}
		v.iov[v.niov].Base = &b[0]
		v.iov[v.niov].SetLen(len(b))
		v.niov++
	}
	v.n, v.err = 0, nil
	err := v.raw.Read(v.call)
	clear(v.iov[:v.niov]) // hold no caller's memory
	if err != nil {
		return 0, err
	}
	if v.err != nil {
		return 0, v.err
	}
	if v.n == 0 {
		return 0, io.EOF
	}
	return v.n, nil
}

// readvFD is the raw connection's callback: false asks the poller to wait for readability.
func (c *BatchedConn) readvFD(fd uintptr) bool {
	v := &c.vec
	for {
		n, _, e := syscall.Syscall(syscall.SYS_READV, fd, uintptr(unsafe.Pointer(&v.iov[0])), uintptr(v.niov))
		switch e {
		case 0:
			v.n = int(n)
			return true
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		default:
			v.err = os.NewSyscallError("readv", e)
			return true
		}
	}
}
