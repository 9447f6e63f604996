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
// are read through a pgrepl.MessageReader whose reads into its buffer stop a few bytes past
// what the message being parsed needs (wireReadAhead): each row's value is then read from the
// socket straight into the task's buffer, so the kernel's copy is the only one.
type wireConn struct {
	nc  net.Conn
	rd  *pgrepl.MessageReader
	out []byte  // messages to send
	hdr [6]byte // a DataRow's column count and value length, read into here
}

// wireReadBuffer is a reader's read buffer. It holds the small messages (ParseComplete,
// BindComplete, a row's header, CommandComplete, ReadyForQuery) and an error's text; row values
// bypass it.
const wireReadBuffer = 64 << 10

// wireReadAhead is how far a read into the buffer may go past the message being parsed: the
// framing between two values (CommandComplete, ReadyForQuery, ParseComplete, BindComplete and
// a DataRow's 11 bytes of header come to about 45) in one read, and only a few bytes of the
// next value, which are copied. Measured against reading 1 MiB at a time and copying every
// value out of the buffer: bench/README.md, "Rows read into the task's buffer".
const wireReadAhead = 64

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
	return newWireConn(hc.Conn), nil
}

// newWireConn reads and writes the protocol on nc.
func newWireConn(nc net.Conn) *wireConn {
	rd := pgrepl.NewMessageReader(nc, wireReadBuffer)
	rd.SetMaxMessageSize(maxRowMessage)
	rd.SetReadAhead(wireReadAhead)
	return &wireConn{nc: nc, rd: rd}
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

// next begins the next message that is not a notice or a parameter change and returns its
// type and body length (the body is read with w.rd's Body or ReadBody, or skipped by the next
// call); an ErrorResponse is returned as a *pgconn.PgError (after which the server skips to the
// sync point: the reader stops anyway).
func (w *wireConn) next() (byte, int, error) {
	for {
		typ, size, err := w.rd.NextHeader()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, 0, fmt.Errorf("connection lost: %w", err)
		}
		switch typ {
		case 'N', 'S', 'A': // NoticeResponse, ParameterStatus, NotificationResponse
			continue
		case 'E':
			body, err := w.rd.Body()
			if err != nil {
				return 0, 0, fmt.Errorf("connection lost: %w", err)
			}
			var e pgproto3.ErrorResponse
			if err := e.Decode(body); err != nil {
				return 0, 0, fmt.Errorf("malformed error from the server: %w", err)
			}
			return 0, 0, pgconn.ErrorResponseToPgError(&e)
		}
		return typ, size, nil
	}
}

// errProtocol is a reply out of the expected order.
var errProtocol = errors.New("unexpected message from the server")

// result reads one statement's reply up to its sync point. For each row, into is called with
// the length of its single value (-1 for NULL) and returns where to read it: a slice of at
// most that many bytes (nil for NULL), filled from the socket after into returns; bytes of the
// value beyond the slice are read and dropped. A value's length is checked against its
// message's before into sees it, but it comes from the server: into bounds what it hands out
// by what it asked for.
func (w *wireConn) result(into func(n int) ([]byte, error)) error {
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
		typ, size, err := w.next()
		if err != nil {
			return err
		}
		switch typ {
		case 'D':
			if err := w.row(size, into); err != nil {
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

// row reads a DataRow of size bytes (its header read): one column, its value read where into
// says.
func (w *wireConn) row(size int, into func(n int) ([]byte, error)) error {
	hdr := w.hdr[:] // in the connection: a local array would escape to the heap, once a row
	if size < len(hdr) {
		return fmt.Errorf("%w: a row of %d bytes, want one column", errProtocol, size)
	}
	if err := w.rd.ReadBody(hdr); err != nil {
		return fmt.Errorf("connection lost: %w", err)
	}
	if binary.BigEndian.Uint16(hdr) != 1 {
		return fmt.Errorf("%w: a row of %d columns, want one", errProtocol, binary.BigEndian.Uint16(hdr))
	}
	n := int(int32(binary.BigEndian.Uint32(hdr[2:])))
	switch {
	case n == -1 && size == len(hdr):
		_, err := into(-1)
		return err
	case n < 0 || n != size-len(hdr):
		return fmt.Errorf("%w: a value of %d bytes in a row of %d", errProtocol, n, size)
	}
	dst, err := into(n)
	if err != nil {
		return err
	}
	if len(dst) > n {
		return fmt.Errorf("a destination of %d bytes for a value of %d (internal error)", len(dst), n)
	}
	if err := w.rd.ReadBody(dst); err != nil {
		return fmt.Errorf("connection lost: %w", err)
	}
	return nil // the rest, if any, is skipped by the next message's header
}

// close ends the session (Terminate) and closes the socket.
func (w *wireConn) close() error {
	w.out, _ = (&pgproto3.Terminate{}).Encode(w.out[:0])
	_, _ = w.nc.Write(w.out)
	return w.nc.Close()
}
