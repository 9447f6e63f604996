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

	vecs [][]byte // ReadBody's and ReadBodyPredicted's slices to read into, kept to reuse
	hdrs []byte   // ReadBodyPredicted's predicted headers arrive here
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

// VectorReader is a connection that can read into several slices in one call (BatchedConn on
// a TCP socket: readv(2)), each filled before the next; it returns the bytes read into all of
// them. bufs[0] is never empty.
type VectorReader interface {
	ReadVector(bufs [][]byte) (int, error)
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
			m.vecs = append(m.vecs[:0], p, more)
			k, err = vr.ReadVector(m.vecs)
			clear(m.vecs) // hold no caller's memory
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

// Predicted is a message a caller expects to follow the one being read (ReadBodyPredicted):
// Header is its first bytes exactly as they must arrive (the type byte, the length, and as
// many of the body's first bytes as the caller knows: a DataRow's column count and value
// length), between 5 and MaxPredictedHeader bytes; Body is where the rest of its body is to
// be read, and Tail, when not empty, where its last len(Tail) bytes go instead (bytes the
// caller cannot predict, after the part it reads into Body: a column after a DataRow's value).
// The length in Header must be 4 + len(Header) - 5 + len(Body) + len(Tail).
type Predicted struct {
	Header []byte
	Body   []byte
	Tail   []byte
}

const (
	// MaxPredictedHeader bounds a Predicted message's Header.
	MaxPredictedHeader = 32
	// MaxPredicted is the most predicted messages one ReadBodyPredicted call reads: a read
	// takes the current body and tail, a header, a body and a tail for each, and the
	// read-ahead.
	MaxPredicted = (MaxReadVectors - 3) / 3
)

// ReadBodyPredicted reads p and then tail, the whole unread rest of the current message's
// body (tail may be empty), as ReadBody does, and then the messages the caller predicts
// follow it, in the same reads: each predicted header into a scratch buffer, each body and
// tail straight into its Body and Tail. A run of rows of known sizes (the --jobs readers'
// chunks) so takes one readv(2) for many rows where ReadBody takes one a row.
//
// Each predicted header is checked as it arrives. At the first that does not arrive exactly as
// predicted, reading stops: that message and everything read after it are put back in the
// buffer (moved out of the Bodies and Tails they landed in), and the stream reads on from
// there with NextHeader as if no prediction had been made; the Body and Tail of a message
// not read whole hold no meaning. The reader waits only for bytes the stream must send: the
// rest of the current body, the rest of a header whose bytes so far are as predicted (a
// message, once begun, is sent whole), and the body of one whose header matched.
//
// It returns how many of the predicted messages were read whole (at most MaxPredicted; the
// rest are not read into): the current message is then the last of them, read to its end.
// Without a VectorReader or a read-ahead (SetReadAhead), when p and tail are not the body's
// whole rest, or when the buffer already holds them, it reads p and tail alone and returns 0.
func (m *MessageReader) ReadBodyPredicted(p, tail []byte, next []Predicted) (int, error) {
	if m.err != nil {
		return 0, m.err
	}
	if len(p)+len(tail) > m.body {
		m.err = fmt.Errorf("pgrepl: reading %d bytes of a message body with %d left (internal error)", len(p)+len(tail), m.body)
		return 0, m.err
	}
	vr, vec := m.r.(VectorReader)
	if !vec || m.ahead == 0 || len(next) == 0 || len(p)+len(tail) != m.body || m.body <= m.wp-m.rp {
		if err := m.ReadBody(p); err != nil {
			return 0, err
		}
		return 0, m.ReadBody(tail)
	}
	next = next[:min(len(next), MaxPredicted)]
	for _, x := range next {
		if len(x.Header) < 5 || len(x.Header) > MaxPredictedHeader ||
			int64(binary.BigEndian.Uint32(x.Header[1:])) != int64(4+len(x.Header)-5+len(x.Body)+len(x.Tail)) {
			m.err = fmt.Errorf("pgrepl: a predicted message's header of %d bytes does not frame its body of %d and tail of %d (internal error)", len(x.Header), len(x.Body), len(x.Tail))
			return 0, m.err
		}
	}
	k := copy(p, m.buf[m.rp:m.wp])
	k2 := copy(tail, m.buf[m.rp+k:m.wp])
	m.body -= k + k2
	p, tail = p[k:], tail[k2:]
	m.rp, m.wp = 0, 0
	if m.hdrs == nil {
		m.hdrs = make([]byte, MaxPredicted*MaxPredictedHeader)
	}
	// vecs: p and tail, then a header, a body and a tail per predicted message (predicted
	// message j's header at 2+3j), then the read-ahead. Each entry is cut down from the
	// front as bytes arrive in it.
	ahead := m.buf[:min(len(m.buf), m.ahead)]
	vecs := append(m.vecs[:0], p, tail)
	for j, x := range next {
		h := m.hdrs[j*MaxPredictedHeader:]
		vecs = append(vecs, h[:len(x.Header)], x.Body, x.Tail)
	}
	vecs = append(vecs, ahead)
	m.vecs = vecs
	defer clear(m.vecs) // hold no caller's memory

	last := len(vecs) - 1 // the read-ahead: not waited for
	i := 0                // the next byte goes to vecs[i]
	checked := 0          // predicted headers checked whole
	empty := 0
	for {
		for i < last && len(vecs[i]) == 0 {
			i++
		}
		if i == last {
			break
		}
		n, err := vr.ReadVector(vecs[i:])
		if n < 0 || n > vecsLen(vecs[i:]) {
			m.err = fmt.Errorf("pgrepl: connection reader returned invalid count %d", n)
			return 0, m.err
		}
		for left := n; left > 0; {
			t := min(left, len(vecs[i]))
			vecs[i] = vecs[i][t:]
			left -= t
			if len(vecs[i]) == 0 && i < last {
				i++
			}
		}
		// Check the predicted headers that have begun arriving.
		for checked < len(next) {
			want := next[checked].Header
			got := len(want) - len(vecs[2+3*checked])
			h := m.hdrs[checked*MaxPredictedHeader:][:got]
			if string(h) != string(want[:got]) {
				return m.unpredict(checked, next, vecs, ahead)
			}
			if got < len(want) {
				break
			}
			checked++
		}
		if err != nil {
			if err == io.EOF {
				if i == last {
					break // the next read reports the end
				}
				err = fmt.Errorf("pgrepl: connection closed inside a message of type %q: %w", m.typ, io.ErrUnexpectedEOF)
			}
			m.err = err
			return 0, m.err
		}
		if n == 0 {
			if empty++; empty >= maxEmptyReads {
				m.err = io.ErrNoProgress
				return 0, m.err
			}
		} else {
			empty = 0
		}
	}
	m.body = 0
	m.typ = next[len(next)-1].Header[0]
	m.wp = len(ahead) - len(vecs[last])
	return len(next), nil
}

// unpredict puts back in the buffer what arrived from predicted message j on (its header
// did not match), followed by the read-ahead's bytes, and reports the j messages before it
// read whole.
func (m *MessageReader) unpredict(j int, next []Predicted, vecs [][]byte, ahead []byte) (int, error) {
	// The bytes that arrived, in stream order: each entry's received front.
	received := func(v int) []byte {
		if v == len(vecs)-1 {
			return ahead[:len(ahead)-len(vecs[v])]
		}
		x := next[(v-2)/3]
		switch (v - 2) % 3 {
		case 0:
			return m.hdrs[(v-2)/3*MaxPredictedHeader:][:len(x.Header)-len(vecs[v])]
		case 1:
			return x.Body[:len(x.Body)-len(vecs[v])]
		default:
			return x.Tail[:len(x.Tail)-len(vecs[v])]
		}
	}
	back := 0
	for v := 2 + 3*j; v < len(vecs)-1; v++ {
		back += len(received(v))
	}
	tail := len(received(len(vecs) - 1))
	if back+tail > len(m.buf) {
		nb := make([]byte, back+tail)
		copy(nb[back:], m.buf[:tail])
		m.buf = nb
	} else {
		copy(m.buf[back:], m.buf[:tail])
	}
	at := 0
	for v := 2 + 3*j; v < len(vecs)-1; v++ {
		at += copy(m.buf[at:], received(v))
	}
	m.rp, m.wp = 0, back+tail
	m.body = 0
	if j > 0 {
		m.typ = next[j-1].Header[0]
	}
	return j, nil
}

func vecsLen(vecs [][]byte) int {
	n := 0
	for _, v := range vecs {
		n += len(v)
	}
	return n
}
