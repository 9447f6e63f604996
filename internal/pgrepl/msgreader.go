package pgrepl

import (
	"encoding/binary"
	"fmt"
	"io"
)

// DefaultReadBufferSize is the MessageReader buffer size used when NewMessageReader is given
// a size <= 0: large enough that one read takes everything a loopback or LAN socket holds.
const DefaultReadBufferSize = 1 << 20

// DefaultMaxMessageSize bounds a message body when SetMaxMessageSize was not called. It is the
// server's own limit for messages it accepts (PQ_LARGE_MESSAGE_LIMIT, 1 GiB minus 1).
const DefaultMaxMessageSize = 1<<30 - 1

// maxEmptyReads is how many (0, nil) reads in a row a MessageReader accepts before it returns
// io.ErrNoProgress.
const maxEmptyReads = 100

// MessageReader reads backend protocol messages (a type byte, a 4-byte length, the body) from a
// connection through one large buffer. Next returns each body as a slice of that buffer, so a
// stream of CopyData messages is read with one read system call per buffer-full rather than one
// or more per message, and with no copy or allocation per message. It is what the base backup's
// connection (and each --jobs reader's) reads after pgconn has connected and authenticated it
// (see pgconn.PgConn.Hijack): pgproto3's reader works with an 8 KiB buffer and needs two or more
// reads per 32 KiB CopyData message of a BASE_BACKUP stream. Before the socket is taken over,
// pgconn.PgConn.SyncConn must have returned: pgconn may have left a background reader blocked in
// a Read of it, which would take the first bytes meant for this reader.
//
// The buffer grows, doubling, only when a single message does not fit in it and its bytes have
// actually arrived; it never allocates on the strength of a length read from the input.
//
// A message can also be read in parts: NextHeader returns its type and body length, and the
// body is then taken with Body (as a slice of the buffer) or ReadBody (into the caller's
// slice: what is buffered is copied, the rest read from the connection straight into it). With
// SetReadAhead bounding the reads into the buffer, a large value is so copied once, by the
// kernel, into its destination (the --jobs readers' rows).
type MessageReader struct {
	r      io.Reader
	buf    []byte
	rp, wp int  // buf[rp:wp] is read but not yet returned
	max    int  // largest accepted body
	ahead  int  // when > 0, a read into buf asks for at most this many bytes beyond the need
	typ    byte // the current message's type (after NextHeader)
	body   int  // bytes of the current message's body not yet taken
	err    error
}

// NewMessageReader returns a MessageReader reading from r through a buffer of size bytes
// (DefaultReadBufferSize if size <= 0).
func NewMessageReader(r io.Reader, size int) *MessageReader {
	if size <= 0 {
		size = DefaultReadBufferSize
	}
	if size < 5 {
		size = 5
	}
	return &MessageReader{r: r, buf: make([]byte, size), max: DefaultMaxMessageSize}
}

// SetMaxMessageSize sets the largest message body Next accepts; a longer one is an error.
func (m *MessageReader) SetMaxMessageSize(n int) { m.max = n }

// Buffered returns the number of bytes read from the connection and not yet returned by Next.
func (m *MessageReader) Buffered() int { return m.wp - m.rp }

// SetReadAhead bounds each read from the connection into the buffer to n bytes beyond what
// the message being parsed still needs (n <= 0: as much as the buffer has room for). Bodies
// read with ReadBody then mostly bypass the buffer; each read costs a system call more, so it
// pays only when most bytes go through ReadBody into buffers of their own.
func (m *MessageReader) SetReadAhead(n int) { m.ahead = max(n, 0) }

// Next returns the next message's type byte and body. The body is valid until the next call of
// Next, NextHeader, Body or ReadBody. A connection that ends between messages gives io.EOF; one
// that ends inside a message gives an error wrapping io.ErrUnexpectedEOF. Errors are sticky.
// The unread rest of a message begun with NextHeader is skipped first.
func (m *MessageReader) Next() (typ byte, body []byte, err error) {
	if typ, _, err = m.NextHeader(); err != nil {
		return 0, nil, err
	}
	if body, err = m.Body(); err != nil {
		return 0, nil, err
	}
	return typ, body, nil
}

// NextHeader begins the next message: it returns its type byte and the length of its body,
// which is then read with Body or ReadBody (what is left unread is skipped by the next call
// of Next or NextHeader). The length is checked against SetMaxMessageSize; nothing is
// allocated on the strength of it.
func (m *MessageReader) NextHeader() (typ byte, size int, err error) {
	if m.err != nil {
		return 0, 0, m.err
	}
	if m.body > 0 {
		if err := m.skipBody(); err != nil {
			return 0, 0, err
		}
	}
	if err := m.fill(5); err != nil {
		if err == io.EOF && m.wp == m.rp {
			m.err = io.EOF
		} else {
			m.err = m.truncated(err, "a message header")
		}
		return 0, 0, m.err
	}
	typ = m.buf[m.rp]
	n := int64(binary.BigEndian.Uint32(m.buf[m.rp+1:]))
	if n < 4 || n-4 > int64(m.max) {
		m.err = fmt.Errorf("pgrepl: message type %q with length %d: the server's stream is corrupt or not the PostgreSQL protocol (longest accepted body: %d bytes)", typ, n, m.max)
		return 0, 0, m.err
	}
	m.rp += 5
	m.typ, m.body = typ, int(n)-4
	return typ, m.body, nil
}

// Body returns the unread rest of the current message's body (begun with NextHeader) as a
// slice of the buffer, valid until the next call of Next, NextHeader, Body or ReadBody.
func (m *MessageReader) Body() ([]byte, error) {
	if m.err != nil {
		return nil, m.err
	}
	n := m.body
	if err := m.fill(n); err != nil {
		m.err = m.truncated(err, fmt.Sprintf("a message of type %q and %d bytes", m.typ, 5+n))
		return nil, m.err
	}
	body := m.buf[m.rp : m.rp+n : m.rp+n]
	m.rp += n
	m.body = 0
	return body, nil
}

// VectorReader is a connection that can read into two slices in one call (BatchedConn on a TCP
// socket: readv(2)), the first filled first; it returns the bytes read into both.
type VectorReader interface {
	ReadVector(p, more []byte) (int, error)
}

// ReadBody reads the next len(p) bytes of the current message's body into p: the bytes
// already buffered are copied, the rest are read from the connection into p directly. p must
// not be longer than the body's unread rest. When the connection is a VectorReader and a
// read-ahead is set, the bytes after p (up to the read-ahead) come into the buffer in the same
// read.
func (m *MessageReader) ReadBody(p []byte) error {
	if m.err != nil {
		return m.err
	}
	if len(p) > m.body {
		m.err = fmt.Errorf("pgrepl: reading %d bytes of a message body with %d left (internal error)", len(p), m.body)
		return m.err
	}
	k := copy(p, m.buf[m.rp:m.wp])
	m.rp += k
	m.body -= k
	p = p[k:]
	empty := 0
	vr, vec := m.r.(VectorReader)
	vec = vec && m.ahead > 0
	for len(p) > 0 {
		var k, extra int
		var err error
		if vec {
			// Everything buffered was taken: the buffer is empty. What the socket holds
			// past p (the next message's header, mostly) comes into it in the same read.
			m.rp, m.wp = 0, 0
			more := m.buf[:min(len(m.buf), m.ahead)]
			k, err = vr.ReadVector(p, more)
			if k < 0 || k > len(p)+len(more) {
				m.err = fmt.Errorf("pgrepl: connection reader returned invalid count %d", k)
				return m.err
			}
			if k > len(p) {
				extra, k = k-len(p), len(p)
				m.wp = extra
			}
		} else {
			k, err = m.r.Read(p)
			if k < 0 || k > len(p) {
				m.err = fmt.Errorf("pgrepl: connection reader returned invalid count %d", k)
				return m.err
			}
		}
		p = p[k:]
		m.body -= k
		if err != nil {
			if len(p) == 0 && err == io.EOF {
				break // the next read reports the end
			}
			if err == io.EOF {
				err = fmt.Errorf("pgrepl: connection closed inside a message of type %q (%d bytes of its body missing): %w", m.typ, m.body, io.ErrUnexpectedEOF)
			}
			m.err = err
			return m.err
		}
		if k == 0 {
			if empty++; empty >= maxEmptyReads {
				m.err = io.ErrNoProgress
				return m.err
			}
		} else {
			empty = 0
		}
	}
	return nil
}

// skipBody reads and drops the unread rest of the current message's body.
func (m *MessageReader) skipBody() error {
	for m.body > 0 {
		if err := m.fill(1); err != nil {
			m.err = m.truncated(err, fmt.Sprintf("a message of type %q (%d bytes of its body missing)", m.typ, m.body))
			return m.err
		}
		k := min(m.body, m.wp-m.rp)
		m.rp += k
		m.body -= k
	}
	return nil
}

func (m *MessageReader) truncated(err error, what string) error {
	if err == io.EOF {
		return fmt.Errorf("pgrepl: connection closed inside %s (%d bytes of it received): %w", what, m.wp-m.rp, io.ErrUnexpectedEOF)
	}
	return err
}

// fill makes sure buf[rp:] holds at least n bytes, reading as much as the connection has.
func (m *MessageReader) fill(n int) error {
	if m.rp == m.wp {
		m.rp, m.wp = 0, 0
	}
	empty := 0
	for m.wp-m.rp < n {
		if m.wp == len(m.buf) {
			if m.rp > 0 {
				m.wp = copy(m.buf, m.buf[m.rp:m.wp])
				m.rp = 0
			} else {
				m.grow()
			}
		} else if m.rp > 0 && len(m.buf)-m.rp < n {
			// The message will not fit behind rp: move what is buffered to the front now,
			// while it is short, rather than after reading more.
			m.wp = copy(m.buf, m.buf[m.rp:m.wp])
			m.rp = 0
		}
		end := len(m.buf)
		if m.ahead > 0 {
			end = min(end, m.rp+n+m.ahead) // > wp: fewer than n bytes are buffered
		}
		k, err := m.r.Read(m.buf[m.wp:end])
		if k < 0 || k > end-m.wp {
			return fmt.Errorf("pgrepl: connection reader returned invalid count %d", k)
		}
		m.wp += k
		if err != nil {
			if err == io.EOF && m.wp-m.rp >= n {
				return nil
			}
			return err
		}
		if k == 0 {
			if empty++; empty >= maxEmptyReads {
				return io.ErrNoProgress
			}
		} else {
			empty = 0
		}
	}
	return nil
}

// grow doubles the buffer, which is full of one incomplete message.
func (m *MessageReader) grow() {
	size := 2 * len(m.buf)
	if limit := m.max + 5; size > limit {
		size = limit
	}
	nb := make([]byte, size)
	copy(nb, m.buf[m.rp:m.wp])
	m.wp -= m.rp
	m.rp = 0
	m.buf = nb
}
