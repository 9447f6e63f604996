package pgrepl

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"
)

// appendMessage appends one backend message (type, length, body) to dst.
func appendMessage(dst []byte, typ byte, body []byte) []byte {
	dst = append(dst, typ)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(body)+4))
	return append(dst, body...)
}

type testMessage struct {
	typ  byte
	body []byte
}

// testStream builds a stream of messages of assorted sizes, some larger than small buffers.
func testStream(seed uint64) ([]byte, []testMessage) {
	rng := rand.New(rand.NewPCG(seed, 1))
	var stream []byte
	var msgs []testMessage
	sizes := []int{0, 1, 4, 5, 31, 32 << 10, 100, 0, 70 << 10, 3}
	for i := range 200 {
		n := sizes[i%len(sizes)]
		if i%7 == 0 {
			n = rng.IntN(40 << 10)
		}
		body := make([]byte, n)
		for j := range body {
			body[j] = byte(rng.Uint32())
		}
		typ := "dcNZCDT"[i%7]
		msgs = append(msgs, testMessage{typ, body})
		stream = appendMessage(stream, typ, body)
	}
	return stream, msgs
}

// chunkReader returns the stream in reads of random sizes, some of them empty.
type chunkReader struct {
	data []byte
	rng  *rand.Rand
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	if c.rng.IntN(10) == 0 {
		return 0, nil
	}
	n := 1 + c.rng.IntN(3*len(p)/2+1)
	if n > len(p) {
		n = len(p)
	}
	n = copy(p, c.data[:min(n, len(c.data))])
	c.data = c.data[n:]
	return n, nil
}

func readAll(t *testing.T, r *MessageReader) []testMessage {
	t.Helper()
	var got []testMessage
	for {
		typ, body, err := r.Next()
		if err == io.EOF {
			return got
		}
		if err != nil {
			t.Fatalf("message %d: %v", len(got), err)
		}
		got = append(got, testMessage{typ, bytes.Clone(body)})
	}
}

func TestMessageReaderChunking(t *testing.T) {
	stream, want := testStream(1)
	readers := map[string]func() io.Reader{
		"whole":    func() io.Reader { return bytes.NewReader(stream) },
		"one byte": func() io.Reader { return iotest.OneByteReader(bytes.NewReader(stream)) },
		"half":     func() io.Reader { return iotest.HalfReader(bytes.NewReader(stream)) },
		"data+EOF": func() io.Reader { return iotest.DataErrReader(bytes.NewReader(stream)) },
		"random":   func() io.Reader { return &chunkReader{stream, rand.New(rand.NewPCG(2, 3))} },
	}
	for name, mk := range readers {
		for _, size := range []int{1, 5, 64, 40 << 10, DefaultReadBufferSize} {
			r := NewMessageReader(mk(), size)
			got := readAll(t, r)
			if len(got) != len(want) {
				t.Fatalf("%s, buffer %d: %d messages, want %d", name, size, len(got), len(want))
			}
			for i := range got {
				if got[i].typ != want[i].typ || !bytes.Equal(got[i].body, want[i].body) {
					t.Fatalf("%s, buffer %d: message %d differs (type %q/%q, %d/%d bytes)",
						name, size, i, got[i].typ, want[i].typ, len(got[i].body), len(want[i].body))
				}
			}
			if r.Buffered() != 0 {
				t.Fatalf("%s: %d bytes left buffered", name, r.Buffered())
			}
			if _, _, err := r.Next(); err != io.EOF {
				t.Fatalf("%s: Next after the end: %v, want io.EOF again", name, err)
			}
		}
	}
}

func TestMessageReaderBadInput(t *testing.T) {
	long := appendMessage(nil, 'd', make([]byte, 100))
	cases := []struct {
		name  string
		input []byte
		max   int
		want  string
		is    error
	}{
		{"truncated header", []byte{'d', 0, 0}, 0, "inside a message header", io.ErrUnexpectedEOF},
		{"truncated body", long[:50], 0, `inside a message of type 'd' and 105 bytes`, io.ErrUnexpectedEOF},
		{"length below 4", []byte{'d', 0, 0, 0, 3}, 0, "length 3", nil},
		{"negative length", []byte{'d', 0xff, 0xff, 0xff, 0xff}, 0, "length 4294967295", nil},
		{"longer than the limit", long, 99, "longest accepted body: 99 bytes", nil},
		{"not PostgreSQL", []byte("HTTP/1.1 400 Bad Request\r\n"), 0, "not the PostgreSQL protocol", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := NewMessageReader(bytes.NewReader(c.input), 16)
			if c.max > 0 {
				r.SetMaxMessageSize(c.max)
			}
			_, _, err := r.Next()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to contain %q", err, c.want)
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Fatalf("err = %v, want it to wrap %v", err, c.is)
			}
			if _, _, again := r.Next(); again != err {
				t.Fatalf("error not sticky: %v then %v", err, again)
			}
		})
	}
}

func TestMessageReaderReadError(t *testing.T) {
	boom := errors.New("connection reset")
	stream := appendMessage(nil, 'd', []byte("abc"))
	r := NewMessageReader(io.MultiReader(bytes.NewReader(stream), iotest.ErrReader(boom)), 0)
	if typ, body, err := r.Next(); err != nil || typ != 'd' || string(body) != "abc" {
		t.Fatalf("first message: %q %q %v", typ, body, err)
	}
	if _, _, err := r.Next(); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want the connection's error", err)
	}
}

type emptyReader struct{}

func (emptyReader) Read([]byte) (int, error) { return 0, nil }

func TestMessageReaderNoProgress(t *testing.T) {
	if _, _, err := NewMessageReader(emptyReader{}, 0).Next(); !errors.Is(err, io.ErrNoProgress) {
		t.Fatalf("err = %v, want io.ErrNoProgress", err)
	}
}

// A body bigger than the buffer grows it only as its bytes arrive: a header that claims a huge
// body on a short stream allocates nothing big.
func TestMessageReaderGrowsOnlyWithData(t *testing.T) {
	lie := []byte{'d', 0x3f, 0xff, 0xff, 0xff, 1, 2, 3}
	r := NewMessageReader(bytes.NewReader(lie), 64)
	if _, _, err := r.Next(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("err = %v", err)
	}
	if len(r.buf) != 64 {
		t.Fatalf("buffer grew to %d bytes on 8 bytes of input", len(r.buf))
	}
	big := appendMessage(nil, 'd', bytes.Repeat([]byte{7}, 1000))
	r = NewMessageReader(bytes.NewReader(big), 64)
	_, body, err := r.Next()
	if err != nil || len(body) != 1000 || body[999] != 7 {
		t.Fatalf("big message: %d bytes, %v", len(body), err)
	}
	if len(r.buf) > 2048 {
		t.Fatalf("buffer %d bytes for a 1005-byte message", len(r.buf))
	}
}

// repeatReader returns the same stream over and over, as a server sending CopyData would.
type repeatReader struct {
	stream []byte
	off    int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		k := copy(p[n:], r.stream[r.off:])
		n += k
		r.off = (r.off + k) % len(r.stream)
	}
	return n, nil
}

// The hot path reads messages without allocating.
func TestMessageReaderNoAllocs(t *testing.T) {
	stream := appendMessage(nil, 'd', make([]byte, 32<<10))
	r := NewMessageReader(&repeatReader{stream: stream}, 0)
	allocs := testing.AllocsPerRun(1000, func() {
		if _, _, err := r.Next(); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per message, want 0", allocs)
	}
}

func BenchmarkMessageReader(b *testing.B) {
	stream := appendMessage(nil, 'd', make([]byte, 32<<10))
	r := NewMessageReader(&repeatReader{stream: stream}, 0)
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := r.Next(); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzMessageReader: any input gives messages whose framing re-encodes to a prefix of the
// input, and then io.EOF or an error, never a panic; with the whole input in one read or in
// one-byte reads, the result is the same.
func FuzzMessageReader(f *testing.F) {
	stream, _ := testStream(5)
	f.Add(stream[:300], 7)
	f.Add(appendMessage(appendMessage(nil, 'd', []byte("x")), 'c', nil), 16)
	f.Add([]byte{'d', 0, 0, 0, 3}, 5)
	f.Add([]byte{'d', 0, 0, 1, 0, 1, 2}, 5)
	f.Fuzz(func(t *testing.T, input []byte, size int) {
		size = 5 + int(uint(size)%4096)
		decode := func(r io.Reader) ([]byte, error) {
			mr := NewMessageReader(r, size)
			mr.SetMaxMessageSize(1 << 20)
			var re []byte
			for {
				typ, body, err := mr.Next()
				if err != nil {
					return re, err
				}
				re = appendMessage(re, typ, body)
			}
		}
		whole, err1 := decode(bytes.NewReader(input))
		bytewise, err2 := decode(iotest.OneByteReader(bytes.NewReader(input)))
		if !bytes.Equal(whole, bytewise) || (err1 == io.EOF) != (err2 == io.EOF) {
			t.Fatalf("one read and one-byte reads differ: %d/%d bytes, %v / %v", len(whole), len(bytewise), err1, err2)
		}
		if !bytes.HasPrefix(input, whole) {
			t.Fatalf("re-encoded messages are not a prefix of the input")
		}
		if err1 == io.EOF && len(whole) != len(input) {
			t.Fatalf("io.EOF with %d of %d bytes decoded", len(whole), len(input))
		}
	})
}

// vectorChunkReader is a chunkReader that is also a VectorReader: a read may run on from p
// into more, as readv does.
type vectorChunkReader struct{ chunkReader }

func (c *vectorChunkReader) ReadVector(bufs [][]byte) (int, error) {
	n := 0
	for i, b := range bufs {
		k, err := c.Read(b)
		n += k
		if k < len(b) || err != nil || (i > 0 && c.rng.IntN(2) == 0) {
			return n, err
		}
	}
	return n, nil
}

// TestMessageReaderParts reads a stream message by message in parts, at random: whole (Next),
// header then Body, header then ReadBody of some of the body (the rest skipped by the next
// header), with and without a read-ahead bound, from a plain and a vectored reader.
func TestMessageReaderParts(t *testing.T) {
	for seed := uint64(1); seed <= 6; seed++ {
		stream, want := testStream(seed)
		cr := chunkReader{data: stream, rng: rand.New(rand.NewPCG(seed, 3))}
		var r io.Reader = &cr
		if seed%2 == 0 {
			r = &vectorChunkReader{cr}
		}
		m := NewMessageReader(r, 256)
		if seed%3 != 0 {
			m.SetReadAhead(int(seed) * 7)
		}
		rng := rand.New(rand.NewPCG(seed, 4))
		dst := make([]byte, 80<<10)
		for i, w := range want {
			var typ byte
			var got []byte
			switch rng.IntN(3) {
			case 0:
				var err error
				if typ, got, err = m.Next(); err != nil {
					t.Fatalf("seed %d, message %d: %v", seed, i, err)
				}
			case 1:
				var size int
				var err error
				if typ, size, err = m.NextHeader(); err != nil || size != len(w.body) {
					t.Fatalf("seed %d, message %d: header %d bytes, %v; want %d", seed, i, size, err, len(w.body))
				}
				if got, err = m.Body(); err != nil {
					t.Fatalf("seed %d, message %d: %v", seed, i, err)
				}
			default:
				var size int
				var err error
				if typ, size, err = m.NextHeader(); err != nil || size != len(w.body) {
					t.Fatalf("seed %d, message %d: header %d bytes, %v; want %d", seed, i, size, err, len(w.body))
				}
				k := rng.IntN(size + 1)
				a := rng.IntN(k + 1)
				if err := m.ReadBody(dst[:a]); err != nil {
					t.Fatalf("seed %d, message %d: %v", seed, i, err)
				}
				if err := m.ReadBody(dst[a:k]); err != nil {
					t.Fatalf("seed %d, message %d: %v", seed, i, err)
				}
				got, w.body = dst[:k], w.body[:k]
			}
			if typ != w.typ || !bytes.Equal(got, w.body) {
				t.Fatalf("seed %d, message %d: type %q, %d bytes; want %q, %d bytes", seed, i, typ, len(got), w.typ, len(w.body))
			}
		}
		if _, _, err := m.NextHeader(); err != io.EOF {
			t.Fatalf("seed %d: after the last message: %v, want io.EOF", seed, err)
		}
	}
}

// TestMessageReaderReadBodyTruncated: a connection that ends inside a body read with ReadBody
// gives io.ErrUnexpectedEOF; asking for more than the body holds is an error, not a read.
func TestMessageReaderReadBodyTruncated(t *testing.T) {
	stream := appendMessage(nil, 'D', make([]byte, 1000))
	m := NewMessageReader(bytes.NewReader(stream[:600]), 64)
	m.SetReadAhead(16)
	if _, _, err := m.NextHeader(); err != nil {
		t.Fatal(err)
	}
	if err := m.ReadBody(make([]byte, 1000)); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated body: %v, want io.ErrUnexpectedEOF", err)
	}
	m = NewMessageReader(bytes.NewReader(stream), 64)
	if _, _, err := m.NextHeader(); err != nil {
		t.Fatal(err)
	}
	if err := m.ReadBody(make([]byte, 1001)); err == nil {
		t.Fatal("ReadBody of more than the body: no error")
	}
}

// TestMessageReaderPredicted reads a row and the six rows predicted after it in one call, from
// a vectored reader that splits the stream at random: when every row arrives as predicted all
// six are read whole into their destinations; when row k differs (a shorter value, another
// message type, another column count) the k-1 before it are read whole and the stream reads
// on from row k exactly as it was sent, whatever had been read into the predicted
// destinations. The buffer (256 bytes) is smaller than what is put back. Rows come with one
// column, or with a second (8 bytes) read into each prediction's Tail.
func TestMessageReaderPredicted(t *testing.T) {
	const rowLen, rows = 100, 6
	for _, tail := range []int{0, 12} {
		row := func(seed, n int) []byte {
			b := []byte{0, 1, 0, 0, 0, byte(n)}
			if tail > 0 {
				b[1] = 2
			}
			for i := range n {
				b = append(b, byte(seed*31+i))
			}
			if tail > 0 {
				b = append(b, 0, 0, 0, 8, 1, 2, 3, 4, 5, 6, 7, byte(seed))
			}
			return b
		}
		differ := []func(k int) testMessage{
			func(k int) testMessage { return testMessage{'D', row(k, 50)} },
			func(k int) testMessage { return testMessage{'C', []byte("SELECT 3\x00")} },
			func(k int) testMessage { b := row(k, rowLen); b[1] = 3; return testMessage{'D', b} },
		}
		for k := 1; k <= rows+1; k++ { // rows+1: every row as predicted
			for d, change := range differ {
				if k == rows+1 && d > 0 {
					break
				}
				var msgs []testMessage
				for i := 0; i <= rows; i++ {
					m := testMessage{'D', row(i, rowLen)}
					if i == k {
						m = change(i)
					}
					msgs = append(msgs, m)
				}
				msgs = append(msgs, testMessage{'C', []byte("SELECT 7\x00")}, testMessage{'Z', []byte("I")}, testMessage{'D', row(9, 3)})
				var stream []byte
				for _, m := range msgs {
					stream = appendMessage(stream, m.typ, m.body)
				}
				for seed := uint64(1); seed <= 30; seed++ {
					where := fmt.Sprintf("tail %d, k %d, change %d, seed %d", tail, k, d, seed)
					r := &vectorChunkReader{chunkReader{data: stream, rng: rand.New(rand.NewPCG(seed, uint64(k)))}}
					m := NewMessageReader(r, 256)
					m.SetReadAhead(64)
					if typ, size, err := m.NextHeader(); err != nil || typ != 'D' || size != 6+rowLen+tail {
						t.Fatalf("%s: first row: %q, %d, %v", where, typ, size, err)
					}
					var hdr [6]byte
					if err := m.ReadBody(hdr[:]); err != nil {
						t.Fatal(err)
					}
					out := make([]byte, (rows+1)*rowLen)
					tails := make([]byte, (rows+1)*tail)
					var preds []Predicted
					for i := 1; i <= rows; i++ {
						h := appendMessage(nil, 'D', row(i, rowLen))[:11]
						preds = append(preds, Predicted{Header: h, Body: out[i*rowLen : (i+1)*rowLen], Tail: tails[i*tail : (i+1)*tail]})
					}
					whole, err := m.ReadBodyPredicted(out[:rowLen], tails[:tail], preds)
					if err != nil {
						t.Fatalf("%s: %v", where, err)
					}
					if whole != k-1 {
						t.Fatalf("%s: %d rows read whole, want %d", where, whole, k-1)
					}
					for i := 0; i <= whole; i++ {
						body := msgs[i].body[6:]
						if got := out[i*rowLen : (i+1)*rowLen]; !bytes.Equal(got, body[:rowLen]) {
							t.Fatalf("%s: row %d's value differs", where, i)
						}
						if got := tails[i*tail : (i+1)*tail]; !bytes.Equal(got, body[rowLen:]) {
							t.Fatalf("%s: row %d's tail differs", where, i)
						}
					}
					rest := readAll(t, m)
					if want := msgs[whole+1:]; len(rest) != len(want) {
						t.Fatalf("%s: %d messages after the predicted ones, want %d", where, len(rest), len(want))
					}
					for i, got := range rest {
						if want := msgs[whole+1+i]; got.typ != want.typ || !bytes.Equal(got.body, want.body) {
							t.Fatalf("%s: message %d after the predicted ones differs", where, i)
						}
					}
				}
			}
		}
	}
}
