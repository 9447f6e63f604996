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
type MessageReader struct {
	r      io.Reader
	buf    []byte
	rp, wp int // buf[rp:wp] is read but not yet returned
	max    int // largest accepted body
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

// Next returns the next message's type byte and body. The body is valid until the next call of
// Next. A connection that ends between messages gives io.EOF; one that ends inside a message
// gives an error wrapping io.ErrUnexpectedEOF. Errors are sticky.
func (m *MessageReader) Next() (typ byte, body []byte, err error) {
	if m.err != nil {
		return 0, nil, m.err
	}
	if err := m.fill(5); err != nil {
		if err == io.EOF && m.wp == m.rp {
			m.err = io.EOF
		} else {
			m.err = m.truncated(err, "a message header")
		}
		return 0, nil, m.err
	}
	typ = m.buf[m.rp]
	n := int64(binary.BigEndian.Uint32(m.buf[m.rp+1:]))
	if n < 4 || n-4 > int64(m.max) {
		m.err = fmt.Errorf("pgrepl: message type %q with length %d: the server's stream is corrupt or not the PostgreSQL protocol (longest accepted body: %d bytes)", typ, n, m.max)
		return 0, nil, m.err
	}
	total := 1 + int(n)
	if err := m.fill(total); err != nil {
		m.err = m.truncated(err, fmt.Sprintf("a message of type %q and %d bytes", typ, total))
		return 0, nil, m.err
	}
	body = m.buf[m.rp+5 : m.rp+total : m.rp+total]
	m.rp += total
	return typ, body, nil
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
		k, err := m.r.Read(m.buf[m.wp:])
		if k < 0 || k > len(m.buf)-m.wp {
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
