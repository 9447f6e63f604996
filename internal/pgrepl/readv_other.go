//go:build !linux

package pgrepl

// vectorState is empty where ReadVector reads p alone.
type vectorState struct{}

func (c *BatchedConn) vectored() bool { return false }

func (c *BatchedConn) readv(p, more []byte) (int, error) { return c.conn.Read(p) }
