package walstream

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/walweave/walweave/ringbuf"
)

// framingConn passes reads through in small pieces and follows the server's message framing,
// so a test can tell whether a read deadline expired in the middle of a message.
type framingConn struct {
	net.Conn
	chunk int

	mu         sync.Mutex
	header     [5]byte
	inHeader   int // header bytes of the current message seen so far
	bodyLeft   int // body bytes of the current message still to come
	timeouts   int
	midMessage int // timeouts that happened with a message partly read
	// injectEvery > 0 makes every injectEvery-th read inside a message body time out.
	injectEvery int
	reads       int
}

func (c *framingConn) Read(p []byte) (int, error) {
	if len(p) > c.chunk {
		p = p[:c.chunk]
	}
	c.mu.Lock()
	c.reads++
	if c.injectEvery > 0 && c.bodyLeft > 0 && c.reads%c.injectEvery == 0 {
		// The read deadline expiring mid-message, which a loopback server sending each
		// message in one write rarely makes happen by itself: pgconn sees the same error.
		c.timeouts++
		c.midMessage++
		c.mu.Unlock()
		return 0, &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}
	}
	c.mu.Unlock()
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	defer c.mu.Unlock()
	for b := p[:n]; len(b) > 0; {
		if c.bodyLeft > 0 {
			k := min(c.bodyLeft, len(b))
			c.bodyLeft -= k
			b = b[k:]
			continue
		}
		c.header[c.inHeader] = b[0]
		c.inHeader++
		b = b[1:]
		if c.inHeader == 5 {
			c.inHeader = 0
			c.bodyLeft = int(binary.BigEndian.Uint32(c.header[1:])) - 4
		}
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.timeouts++
		if c.inHeader > 0 || c.bodyLeft > 0 {
			c.midMessage++
		}
	}
	return n, err
}

// TestReadDeadlineResumesMessages checks the mechanism the receiver relies on to send status
// updates while reading: with pgconn's deadline-only context handler a read deadline makes
// ReceiveMessage fail with a timeout, the connection stays usable, and a message that was
// partly read is resumed intact. A 1ms status interval and reads of at most 1000 bytes make
// deadlines expire in the middle of 128 kB XLogData messages many times.
func TestReadDeadlineResumesMessages(t *testing.T) {
	c := sharedCluster(t)
	c.Exec(t, "insert into small values (1); select pg_switch_wal()")
	start := lsnOf(t, c, "select pg_current_wal_lsn()")
	c.Exec(t, "insert into small select generate_series(1, 200000)")
	end := lsnOf(t, c, "select pg_current_wal_insert_lsn()")

	cfg := connCfg(t, c, "", time.Millisecond)
	var fc *framingConn
	cfg.ConnConfig.AfterNetConnect = func(ctx context.Context, _ *pgconn.Config, conn net.Conn) (net.Conn, error) {
		fc = &framingConn{Conn: conn, chunk: 1000, injectEvery: 97}
		return fc, nil
	}
	r := connectT(t, cfg)
	if r.StatusInterval() != time.Millisecond {
		t.Fatalf("status interval %v", r.StatusInterval())
	}
	ring := ringbuf.New(4)
	col := newCollector(ring, c.DataDir, false)
	r.SetEnd(end, 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := r.Stream(ctx, ring, start, 1, ""); err != nil {
		t.Fatal(err)
	}
	segs, err := col.wait(t, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	checkSegments(t, segs, 1, start, end, r.SegmentSize())
	checkPadded(t, segs[len(segs)-1], int(end-segs[len(segs)-1].StartLSN))
	st := r.Stats()
	fc.mu.Lock()
	timeouts, mid := fc.timeouts, fc.midMessage
	fc.mu.Unlock()
	t.Logf("%d bytes in %d messages, %d read timeouts (%d in the middle of a message), %d status updates",
		st.ReceivedBytes, st.Messages, st.ReadTimeouts, mid, st.StatusUpdates)
	if st.ReadTimeouts == 0 || int64(timeouts) != st.ReadTimeouts || mid == 0 {
		t.Fatalf("the deadline path was not exercised: %d timeouts seen by the receiver, %d by the conn, %d mid-message", st.ReadTimeouts, timeouts, mid)
	}
}

// deafConn drops everything the server sends once deaf is set: a hung network as the client
// sees it.
type deafConn struct {
	net.Conn
	deaf    atomic.Bool
	scratch [4096]byte
}

func (c *deafConn) Read(p []byte) (int, error) {
	for c.deaf.Load() {
		if _, err := c.Conn.Read(c.scratch[:]); err != nil {
			return 0, err
		}
	}
	return c.Conn.Read(p)
}

// TestSilentServer: when the server is not heard from although the status updates ask it to
// reply, Stream gives up after twice wal_sender_timeout instead of hanging, with the progress
// timeout off (with it, the progress timeout decides: TestProgressTimeoutMeaning).
func TestSilentServer(t *testing.T) {
	c := sharedCluster(t)
	cfg := connCfg(t, c, "", 0)
	cfg.ProgressTimeout = -1
	cfg.ConnConfig.RuntimeParams["wal_sender_timeout"] = "1s"
	var dc *deafConn
	cfg.ConnConfig.AfterNetConnect = func(ctx context.Context, _ *pgconn.Config, conn net.Conn) (net.Conn, error) {
		dc = &deafConn{Conn: conn}
		return dc, nil
	}
	r := connectT(t, cfg)
	ring := ringbuf.New(4)
	col := newCollector(ring, c.DataDir, false)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res := startStream(ctx, r, ring, lsnOf(t, c, "select pg_current_wal_lsn()"), 1)
	waitUntil(t, 10*time.Second, "streaming", func() bool { return r.Stats().StatusUpdates > 0 })
	// Idle but alive: the server answers the requests for a reply.
	time.Sleep(2500 * time.Millisecond)
	select {
	case <-res.done:
		t.Fatalf("Stream ended on an idle server: %v", res.err)
	default:
	}
	if st := r.Stats(); st.Keepalives == 0 {
		t.Fatalf("the server never answered: %+v", st)
	}
	dc.deaf.Store(true)
	t0 := time.Now()
	err := res.wait(t, 10*time.Second)
	t.Logf("after %v: %v", time.Since(t0).Round(time.Millisecond), err)
	if err == nil || !strings.Contains(err.Error(), "has sent nothing for") {
		t.Fatalf("error %v", err)
	}
	if d := time.Since(t0); d > 4*time.Second {
		t.Errorf("took %v", d)
	}
	col.wait(t, 5*time.Second)
	slot := r.SlotName()
	r.Close()
	waitSlotGone(t, c, slot)
}
