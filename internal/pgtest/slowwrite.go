package pgtest

import (
	"context"
	"net"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// SlowWrites makes every write of connections made with cfg return 200 ms after its bytes are
// sent, until the returned function is called: to pgconn it looks like a write that blocked,
// or a writer descheduled on a busy machine, for longer than its slow-write timer (15 ms),
// after which pgconn reads the socket in a background goroutine. Only the writes' return is
// delayed: the server sees every byte at once.
func SlowWrites(cfg *pgconn.Config) (stop func()) {
	var stalled atomic.Bool
	stalled.Store(true)
	cfg.AfterNetConnect = func(_ context.Context, _ *pgconn.Config, nc net.Conn) (net.Conn, error) {
		return &slowWriteConn{Conn: nc, stalled: &stalled}, nil
	}
	return func() { stalled.Store(false) }
}

type slowWriteConn struct {
	net.Conn
	stalled *atomic.Bool
}

func (c *slowWriteConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if c.stalled.Load() {
		time.Sleep(200 * time.Millisecond)
	}
	return n, err
}
