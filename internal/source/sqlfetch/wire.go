package sqlfetch

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/walweave/walweave/internal/pgrepl"
)

// wireConn is a reader's connection once pgconn has connected and authenticated it: the
// socket taken over (pgconn.PgConn.Hijack) and spoken to directly, as BASE_BACKUP's
// connection is. The queries go out as Parse/Bind/Execute/Sync, several in flight; the replies
// are read through a pgrepl.MessageReader, whose 1 MiB buffer takes in one read what pgconn's
// 8 KiB reader needs a read per row and more for, and each row's value is copied once, from
// that buffer into the task's.
type wireConn struct {
	nc  net.Conn
	rd  *pgrepl.MessageReader
	out []byte // messages to send
}

// wireReadBuffer is a reader's read buffer: several 128 KiB rows per read.
const wireReadBuffer = 1 << 20

// takeOver hijacks an idle connection.
//
// The socket must have no reader but ours. pgconn starts a background reader whenever one of
// its writes takes longer than 15 ms (a full socket buffer, or on a busy machine a writer that
// was not scheduled), so that the server's replies cannot deadlock against the write; stopping
// it only marks it stopping, and if it had already read the whole reply it stays blocked in
// its next Read. The connection's start-up (startup message, SCRAM) writes so: after a slow
// one the connection completes from the buffered reply, and that forgotten Read takes the
// first bytes of the first reply sent on the taken-over socket, which then frames messages
// from the middle of a row (TestTakeOverAfterSlowWrite; once in CI: "message type 0 with
// length 0"). SyncConn returns only once that reader has ended and nothing is buffered,
// pinging the server until it has (one round trip, only when a reader was left over).
func takeOver(ctx context.Context, c *pgconn.PgConn) (*wireConn, error) {
	if err := c.SyncConn(ctx); err != nil {
		return nil, fmt.Errorf("stop pgconn's background reader: %w", err)
	}
	hc, err := c.Hijack()
	if err != nil {
		return nil, err
	}
	if n := hc.Frontend.ReadBufferLen(); n != 0 {
		hc.Conn.Close()
		return nil, fmt.Errorf("%d unexpected bytes from the server after its last reply", n)
	}
	rd := pgrepl.NewMessageReader(hc.Conn, wireReadBuffer)
	rd.SetMaxMessageSize(maxRowMessage)
	return &wireConn{nc: hc.Conn, rd: rd}, nil
}

// maxRowMessage bounds a reply message: a row of at most 256 MiB (the largest chunk) and its
// framing.
const maxRowMessage = 256<<20 + 64

// queue adds one statement, its parameters (text) and a sync point to the messages to send;
// the result comes in binary.
func (w *wireConn) queue(sql string, oids []uint32, params [][]byte) {
	var err error
	w.out, err = (&pgproto3.Parse{Query: sql, ParameterOIDs: oids}).Encode(w.out)
	if err == nil {
		w.out, err = (&pgproto3.Bind{Parameters: params, ResultFormatCodes: []int16{1}}).Encode(w.out)
	}
	if err == nil {
		w.out, err = (&pgproto3.Execute{}).Encode(w.out)
	}
	if err == nil {
		w.out, err = (&pgproto3.Sync{}).Encode(w.out)
	}
	if err != nil { // only for more than 65535 parameters or a message over 1 GiB
		panic(fmt.Sprintf("sqlfetch: encode a query: %v", err))
	}
}

// flush sends the queued messages. It may run while the server is blocked sending an earlier
// result that has not been read yet: the requests are small (at most about 16 KiB, a batch of 256
// long paths; at most Depth of them unanswered), so they fit in the socket buffers and the write
// returns without the server reading them, as pgconn's background reader would ensure.
func (w *wireConn) flush() error {
	if len(w.out) == 0 {
		return nil
	}
	_, err := w.nc.Write(w.out)
	w.out = w.out[:0]
	return err
}

// next returns the next message that is not a notice or a parameter change; an
// ErrorResponse is returned as a *pgconn.PgError (after which the server skips to the sync
// point: the reader stops anyway).
func (w *wireConn) next() (byte, []byte, error) {
	for {
		typ, body, err := w.rd.Next()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, nil, fmt.Errorf("connection lost: %w", err)
		}
		switch typ {
		case 'N', 'S', 'A': // NoticeResponse, ParameterStatus, NotificationResponse
			continue
		case 'E':
			var e pgproto3.ErrorResponse
			if err := e.Decode(body); err != nil {
				return 0, nil, fmt.Errorf("malformed error from the server: %w", err)
			}
			return 0, nil, pgconn.ErrorResponseToPgError(&e)
		}
		return typ, body, nil
	}
}

// errProtocol is a reply out of the expected order.
var errProtocol = errors.New("unexpected message from the server")

// result reads one statement's reply up to its sync point, calling row with each row's single
// value (nil for NULL; valid only during the call).
func (w *wireConn) result(row func(v []byte) error) error {
	for _, want := range []byte{'1', '2'} { // ParseComplete, BindComplete
		typ, _, err := w.next()
		if err != nil {
			return err
		}
		if typ != want {
			return fmt.Errorf("%w: %q, want %q", errProtocol, typ, want)
		}
	}
	for {
		typ, body, err := w.next()
		if err != nil {
			return err
		}
		switch typ {
		case 'D':
			if len(body) < 6 || binary.BigEndian.Uint16(body) != 1 {
				return fmt.Errorf("%w: a row of %d bytes, want one column", errProtocol, len(body))
			}
			n := int32(binary.BigEndian.Uint32(body[2:]))
			var v []byte
			switch {
			case n == -1:
			case n < 0 || int(n) != len(body)-6:
				return fmt.Errorf("%w: a value of %d bytes in a row of %d", errProtocol, n, len(body))
			default:
				v = body[6:]
			}
			if err := row(v); err != nil {
				return err
			}
		case 'C': // CommandComplete
			typ, _, err := w.next()
			if err != nil {
				return err
			}
			if typ != 'Z' {
				return fmt.Errorf("%w: %q, want the sync point", errProtocol, typ)
			}
			return nil
		default:
			return fmt.Errorf("%w: %q in a result", errProtocol, typ)
		}
	}
}

// close ends the session (Terminate) and closes the socket.
func (w *wireConn) close() error {
	w.out, _ = (&pgproto3.Terminate{}).Encode(w.out[:0])
	_, _ = w.nc.Write(w.out)
	return w.nc.Close()
}
