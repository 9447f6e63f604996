//go:build !linux

package pgrepl

// vectorState is empty where ReadVector reads the first slice alone.
type vectorState struct{}

func (c *BatchedConn) vectored() bool { return false }

func (c *BatchedConn) readv(bufs [][]byte) (int, error) { return c.conn.Read(bufs[0]) }
