package pgrepl

import (
	"context"
	"errors"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// DefaultProgressTimeout is how long a server may send nothing on a live connection (not
// even a keepalive it was asked for) before walweave gives up on it, when the caller's
// ProgressTimeout is 0 (mux.Config, basebackup.Config, walstream.Config alike).
const DefaultProgressTimeout = 60 * time.Second

// ProgressTimeout is the one reading of a ProgressTimeout setting: 0 means
// DefaultProgressTimeout, a negative value turns the bound off (returned as 0).
func ProgressTimeout(d time.Duration) time.Duration {
	switch {
	case d == 0:
		return DefaultProgressTimeout
	case d < 0:
		return 0
	}
	return d
}

// TCP holds the keepalive and user-timeout settings of a replication connection, applied on
// both ends: on walweave's socket (so that walweave notices a dead server or network) and, as
// startup parameters, on the server's (so that the walsender, and a temporary slot with it, goes
// when walweave or the network does). Zero fields are left as they are (the operating system's
// defaults, or the connection string's).
type TCP struct {
	// KeepaliveIdle is the idle time before the first keepalive probe (server GUC
	// tcp_keepalives_idle).
	KeepaliveIdle time.Duration
	// KeepaliveInterval is the time between unanswered probes (tcp_keepalives_interval).
	KeepaliveInterval time.Duration
	// KeepaliveCount is how many unanswered probes end the connection (tcp_keepalives_count).
	KeepaliveCount int
	// UserTimeout is how long sent data may stay unacknowledged, and, with keepalives, how long
	// the peer may stay silent once probing started, before the kernel ends the connection with
	// ETIMEDOUT (TCP_USER_TIMEOUT, server GUC tcp_user_timeout; Linux).
	UserTimeout time.Duration
}

// ApplyTCP sets t on cfg: startup parameters asking the server for the same settings on its
// socket (those the connection string does not already set, e.g. through options=-c...), and
// a dialer that sets them on walweave's socket. It keeps cfg.ConnectTimeout.
func ApplyTCP(cfg *pgconn.Config, t TCP) {
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	// The server applies startup parameters after the options parameter's -c settings: a
	// setting the user gave there is left alone.
	options := strings.ReplaceAll(cfg.RuntimeParams["options"], "-", "_")
	set := func(name string, v int64) {
		if _, ok := cfg.RuntimeParams[name]; !ok && v > 0 && !strings.Contains(options, name) {
			cfg.RuntimeParams[name] = strconv.FormatInt(v, 10)
		}
	}
	// The GUCs' units: seconds for the keepalives, milliseconds for the user timeout.
	set("tcp_keepalives_idle", ceilSeconds(t.KeepaliveIdle))
	set("tcp_keepalives_interval", ceilSeconds(t.KeepaliveInterval))
	set("tcp_keepalives_count", int64(t.KeepaliveCount))
	set("tcp_user_timeout", t.UserTimeout.Milliseconds())

	d := &net.Dialer{Timeout: cfg.ConnectTimeout}
	if t.KeepaliveIdle > 0 || t.KeepaliveInterval > 0 || t.KeepaliveCount > 0 {
		d.KeepAliveConfig = net.KeepAliveConfig{Enable: true, Idle: t.KeepaliveIdle,
			Interval: t.KeepaliveInterval, Count: t.KeepaliveCount}
	}
	if t.UserTimeout > 0 {
		ms := int(t.UserTimeout.Milliseconds())
		d.Control = func(network, _ string, c syscall.RawConn) error {
			if network != "tcp" && network != "tcp4" && network != "tcp6" {
				return nil
			}
			var serr error
			if err := c.Control(func(fd uintptr) { serr = setUserTimeout(fd, ms) }); err != nil {
				return err
			}
			return serr
		}
	}
	cfg.DialFunc = d.DialContext
}

func ceilSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Second - 1) / time.Second)
}

// ErrConnTimedOut is what TimedOut errors are explained with.
var ErrConnTimedOut = errors.New("connection timed out: the server's host stopped acknowledging (TCP keepalive or user timeout): the network is cut or the host is down")

// TimedOut reports whether err is the kernel ending the connection because the peer stopped
// answering (ETIMEDOUT: TCP keepalive or TCP_USER_TIMEOUT), as opposed to a read deadline of
// our own, which net.Error.Timeout also reports.
func TimedOut(err error) bool {
	return errors.Is(err, syscall.ETIMEDOUT) && !errors.Is(err, os.ErrDeadlineExceeded)
}

// IsDeadline reports whether err is a read or write deadline of our own (SetDeadline), and not
// the kernel's ETIMEDOUT.
func IsDeadline(err error) bool {
	return errors.Is(err, os.ErrDeadlineExceeded) ||
		(!TimedOut(err) && pgconn.Timeout(err))
}

// CancelBackend sends the server a cancel request for conn's backend (also after
// pgconn.PgConn.Hijack), waiting at most timeout. A walsender busy in a command (BASE_BACKUP
// waiting for its start checkpoint) notices neither a closed socket nor a dead network until
// the command ends; a cancel request interrupts it at once.
func CancelBackend(conn *pgconn.PgConn, timeout time.Duration) error {
	if conn == nil || conn.PID() == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return conn.CancelRequest(ctx)
}
