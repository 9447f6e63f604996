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

	// The row being read: its column count, and its CRC column (rowCRCLen bytes: length and
	// int8) when it has one.
	cols  int
	trail [rowCRCLen]byte

	// The rows predicted to follow the one being read (predictRow), read with it.
	preds     []pgrepl.Predicted
	predHdr   [pgrepl.MaxPredicted][rowHeaderLen]byte
	predTrail [pgrepl.MaxPredicted][rowCRCLen]byte
}

const (
	// rowHeaderLen is a DataRow's bytes before its value: type, length, column count and
	// value length.
	rowHeaderLen = 11
	// rowCRCLen is a row's CRC column after its value: its length (8) and the int8.
	rowCRCLen = 12
)

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

// rowSink is what a result's rows are read into.
type rowSink struct {
	// into is called for each row with the length of its value (-1 for NULL) and returns
	// where to read it: a slice of at most that many bytes (nil for NULL), filled from the
	// socket after into returns; bytes of the value beyond the slice are read and dropped. A
	// value's length is checked against its message's before into sees it, but it comes from
	// the server: into bounds what it hands out by what it asked for.
	into func(n int) ([]byte, error)
	// ahead, when set, is called once into has handed out a whole value's destination: it
	// may predict the rows that follow (predictRow, with the destinations into would give
	// them), which are then read in the same system calls. Each predicted row that arrives
	// as predicted is passed to into as any row is, and into must hand out the same
	// destination again.
	ahead func()
	// crc, when set, is called after each row that has a second column, the CRC-32C of its
	// value (crc32c(bytea), PostgreSQL 18 and later), once the value is read: ok is false
	// when the value was not read whole, or the column is NULL (a NULL value's).
	crc func(v uint32, ok bool)
}

// result reads one statement's reply up to its sync point, each row into sink. A row has one
// column, the value, or two: the value and its CRC-32C (an int8).
func (w *wireConn) result(sink *rowSink) error {
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
			if err := w.row(size, sink); err != nil {
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

// row reads a DataRow of size bytes (its header read): its value read where sink.into says,
// its CRC column if any, and the rows sink.ahead predicts after it.
func (w *wireConn) row(size int, sink *rowSink) error {
	hdr := w.hdr[:] // in the connection: a local array would escape to the heap, once a row
	if size < len(hdr) {
		return fmt.Errorf("%w: a row of %d bytes, want one or two columns", errProtocol, size)
	}
	if err := w.rd.ReadBody(hdr); err != nil {
		return fmt.Errorf("connection lost: %w", err)
	}
	w.cols = int(binary.BigEndian.Uint16(hdr))
	n := int(int32(binary.BigEndian.Uint32(hdr[2:])))
	trail := 0 // bytes after the value
	switch w.cols {
	case 1:
	case 2:
		trail = size - len(hdr) - max(n, 0)
		if trail != 4 && trail != rowCRCLen { // NULL, or an int8
			return fmt.Errorf("%w: a row of %d bytes with a value of %d, want a CRC column after it", errProtocol, size, n)
		}
	default:
		return fmt.Errorf("%w: a row of %d columns, want one or two", errProtocol, w.cols)
	}
	switch {
	case n == -1 && size == len(hdr)+trail:
		if _, err := sink.into(-1); err != nil {
			return err
		}
		if err := w.rd.ReadBody(w.trail[:trail]); err != nil {
			return fmt.Errorf("connection lost: %w", err)
		}
		return w.rowCRC(sink, w.trail[:trail], 0, true)
	case n < 0 || n != size-len(hdr)-trail:
		return fmt.Errorf("%w: a value of %d bytes in a row of %d", errProtocol, n, size)
	}
	dst, err := sink.into(n)
	if err != nil {
		return err
	}
	if len(dst) > n {
		return fmt.Errorf("a destination of %d bytes for a value of %d (internal error)", len(dst), n)
	}
	if len(dst) < n { // the rest of the value, and any CRC of it, is skipped by the next header
		if err := w.rd.ReadBody(dst); err != nil {
			return fmt.Errorf("connection lost: %w", err)
		}
		if sink.crc != nil && w.cols == 2 {
			sink.crc(0, false)
		}
		return nil
	}
	w.preds = w.preds[:0]
	if sink.ahead != nil && n > 0 && (trail == 0 || trail == rowCRCLen) {
		sink.ahead()
	}
	whole, err := w.rd.ReadBodyPredicted(dst, w.trail[:trail], w.preds)
	if err != nil {
		return fmt.Errorf("connection lost: %w", err)
	}
	if err := w.rowCRC(sink, w.trail[:trail], n, false); err != nil {
		return err
	}
	// The rows after those read whole did not arrive as predicted: the stream reads on from
	// the reader's buffer.
	for _, p := range w.preds[:whole] {
		d, err := sink.into(len(p.Body))
		if err != nil {
			return err
		}
		if len(d) != len(p.Body) || &d[0] != &p.Body[0] {
			return fmt.Errorf("a predicted row read into another destination than its own (internal error)")
		}
		if err := w.rowCRC(sink, p.Tail, len(p.Body), false); err != nil {
			return err
		}
	}
	clear(w.preds) // hold no task's buffer
	return nil
}

// rowCRC passes a row's CRC column (trail: its length and value; empty for a row of one
// column) to sink.crc. A NULL CRC is that of a NULL value.
func (w *wireConn) rowCRC(sink *rowSink, trail []byte, n int, null bool) error {
	if len(trail) == 0 {
		return nil
	}
	k := int32(binary.BigEndian.Uint32(trail))
	switch {
	case k == -1 && null:
		if sink.crc != nil {
			sink.crc(0, true) // of no bytes
		}
		return nil
	case k != 8 || len(trail) != rowCRCLen:
		return fmt.Errorf("%w: a CRC column of %d bytes after a value of %d", errProtocol, k, n)
	}
	v := binary.BigEndian.Uint64(trail[4:])
	if v > 0xffffffff {
		return fmt.Errorf("%w: a CRC-32C of %d", errProtocol, v)
	}
	if sink.crc != nil {
		sink.crc(uint32(v), true)
	}
	return nil
}

// predictRow predicts that the row after the last one predicted (or the row being read) has a
// value of len(dst) bytes, to be read into dst, and the columns of the row being read. It
// returns false, predicting nothing, once pgrepl.MaxPredicted rows are predicted.
func (w *wireConn) predictRow(dst []byte) bool {
	k := len(w.preds)
	if k == len(w.predHdr) || len(dst) == 0 {
		return false
	}
	var tail []byte
	if w.cols == 2 {
		tail = w.predTrail[k][:]
	}
	h := w.predHdr[k][:]
	h[0] = 'D'
	binary.BigEndian.PutUint32(h[1:], uint32(rowHeaderLen-1+len(dst)+len(tail)))
	binary.BigEndian.PutUint16(h[5:], uint16(w.cols))
	binary.BigEndian.PutUint32(h[7:], uint32(len(dst)))
	w.preds = append(w.preds, pgrepl.Predicted{Header: h, Body: dst, Tail: tail})
	return true
}

// close ends the session (Terminate) and closes the socket.
func (w *wireConn) close() error {
	w.out, _ = (&pgproto3.Terminate{}).Encode(w.out[:0])
	_, _ = w.nc.Write(w.out)
	return w.nc.Close()
}
