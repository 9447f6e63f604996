package pgrepl

import (
	"net"
	"syscall"
)

// SetRecvLowWater sets SO_RCVLOWAT on the TCP socket under c (under TLS too): the kernel then
// reports the socket readable, and wakes a waiting reader, only once n bytes are queued. A read
// still returns whatever is queued, so a reader that sets it must bound its waits with read
// deadlines to take the bytes below the mark (the end of a stream, a pause). n = 1 restores the
// default. It reports false, setting nothing, if c is not TCP (a Unix-domain socket, whose
// readiness ignores the mark) or the kernel refuses the option.
func SetRecvLowWater(c net.Conn, n int) bool {
	raw := tcpRawConn(c)
	if raw == nil {
		return false
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVLOWAT, n)
	}); err != nil || serr != nil {
		return false
	}
	return true
}

// RecvLowWater returns the SO_RCVLOWAT of the TCP socket under c, and false if c is not TCP or
// the option cannot be read.
func RecvLowWater(c net.Conn) (int, bool) {
	raw := tcpRawConn(c)
	if raw == nil {
		return 0, false
	}
	var v int
	var gerr error
	if err := raw.Control(func(fd uintptr) {
		v, gerr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVLOWAT)
	}); err != nil || gerr != nil {
		return 0, false
	}
	return v, true
}

// tcpRawConn returns the raw connection of the TCP socket under c (under TLS too), or nil.
func tcpRawConn(c net.Conn) syscall.RawConn {
	// Under TLS and a BatchedConn (both have NetConn), at most a few layers deep.
	for i := 0; i < 4; i++ {
		w, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		c = w.NetConn()
	}
	tcp, ok := c.(*net.TCPConn)
	if !ok {
		return nil
	}
	raw, err := tcp.SyscallConn()
	if err != nil {
		return nil
	}
	return raw
}
