package pgrepl

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/walweave/walweave/internal/pgtest"
)

// socketPair returns the two ends of a loopback TCP connection.
func socketPair(t *testing.T, network, addr string) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial(network, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

func lowWater(t *testing.T, c net.Conn) int {
	t.Helper()
	v, ok := RecvLowWater(c)
	if !ok {
		t.Fatal("SO_RCVLOWAT cannot be read")
	}
	return v
}

// Bytes below the low-water mark are delivered (after the batch wait), both a short tail and
// data followed by a long pause; turning batching off restores the socket's default.
func TestBatchedConnTail(t *testing.T) {
	client, server := socketPair(t, "tcp", "127.0.0.1:0")
	bc := NewBatchedConn(context.Background(), client)
	if !bc.Batch(true) {
		t.Fatal("batch(true) refused on a TCP socket")
	}
	if got := lowWater(t, client); got != DefaultBatchLowWater {
		t.Fatalf("SO_RCVLOWAT = %d while batching, want %d", got, DefaultBatchLowWater)
	}
	want := bytes.Repeat([]byte("walweave"), 8<<10) // 64 KiB, far below the mark
	go func() {
		server.Write(want[:100])
		time.Sleep(50 * time.Millisecond)
		server.Write(want[100:])
	}()
	got := make([]byte, len(want))
	if _, err := io.ReadFull(bc, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("bytes differ")
	}
	bc.Batch(false)
	if got := lowWater(t, client); got != 1 {
		t.Fatalf("SO_RCVLOWAT = %d after batching, want 1", got)
	}
	// Without batching no deadline is left on the socket: a read waits for data.
	go func() {
		time.Sleep(2 * DefaultBatchWait)
		server.Write([]byte("x"))
	}()
	if n, err := bc.Read(got[:1]); n != 1 || err != nil {
		t.Fatalf("unbatched read: %d, %v", n, err)
	}
}

// A cancelled context ends a batched read that is waiting for data, as the cancellation
// watcher of baseBackup does it: a deadline in the past.
func TestBatchedConnCancel(t *testing.T) {
	client, _ := socketPair(t, "tcp", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	stop := context.AfterFunc(ctx, func() { client.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	bc := NewBatchedConn(ctx, client)
	bc.Batch(true)
	time.AfterFunc(20*time.Millisecond, cancel)
	if err := readWithin(t, bc, 10*time.Second); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read after cancel: %v, want a deadline error", err)
	}
	// Turning batching off after the cancellation does not clear the watcher's deadline.
	bc.Batch(false)
	if _, err := bc.Read(make([]byte, 10)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read after batch(false): %v, want the deadline error to stay", err)
	}
}

// Under TLS the low-water mark goes on the TCP socket below, and records are read whole.
func TestBatchedConnTLS(t *testing.T) {
	certPEM, keyPEM, err := pgtest.NewCA("batched TLS test")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	client, server := socketPair(t, "tcp", "127.0.0.1:0")
	srv := tls.Server(server, &tls.Config{Certificates: []tls.Certificate{cert}})
	// The test checks reading, not verification (the certificate is a bare CA certificate).
	cli := tls.Client(client, &tls.Config{InsecureSkipVerify: true})
	want := bytes.Repeat([]byte{1, 2, 3, 4, 5, 6, 7}, 300<<10)
	go func() {
		srv.Write(want)
	}()
	if err := cli.Handshake(); err != nil { // as pgconn does before Begin takes the socket over
		t.Fatal(err)
	}
	bc := NewBatchedConn(context.Background(), cli)
	if !bc.Batch(true) {
		t.Fatal("batch(true) refused on TLS over TCP")
	}
	if got := lowWater(t, client); got != DefaultBatchLowWater {
		t.Fatalf("SO_RCVLOWAT = %d on the TCP socket under TLS", got)
	}
	got := make([]byte, len(want))
	if _, err := io.ReadFull(bc, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("bytes differ")
	}
}

// A Unix-domain socket is read as it is.
func TestBatchedConnUnix(t *testing.T) {
	client, server := socketPair(t, "unix", filepath.Join(t.TempDir(), "s"))
	bc := NewBatchedConn(context.Background(), client)
	if bc.Batch(true) {
		t.Fatal("batch(true) accepted on a Unix socket")
	}
	go server.Write([]byte("hello"))
	got := make([]byte, 5)
	if _, err := io.ReadFull(bc, got); err != nil || string(got) != "hello" {
		t.Fatalf("%q, %v", got, err)
	}
}

// stickyTimeoutConn is a connection layer that keeps returning one timeout error without
// waiting, as a TLS connection does after its handshake timed out.
type stickyTimeoutConn struct{ net.Conn }

func (stickyTimeoutConn) Read([]byte) (int, error) { return 0, os.ErrDeadlineExceeded }

// A timeout that comes back at once is returned, not retried for ever.
func TestBatchedConnStickyTimeout(t *testing.T) {
	client, _ := socketPair(t, "tcp", "127.0.0.1:0")
	bc := NewBatchedConn(context.Background(), stickyTimeoutConn{client})
	bc.active = true
	if err := readWithin(t, bc, 10*time.Second); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
}

// readWithin reads from bc and returns the read's error; the test fails if the read has not
// returned within limit.
func readWithin(t *testing.T, bc *BatchedConn, limit time.Duration) error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := bc.Read(make([]byte, 10))
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(limit):
		t.Fatalf("a read did not return within %v", limit)
		return nil
	}
}

// TestBatchedConnReadVector reads a stream of messages through a MessageReader with a bounded
// read-ahead on a batched TCP socket, each body with ReadBody (readv into the body's
// destination and the buffer): every byte arrives, in order, including a tail below the
// low-water mark; the end of the stream is io.EOF. Under TLS (not the socket's own bytes) the
// connection is not vectored.
func TestBatchedConnReadVector(t *testing.T) {
	client, server := socketPair(t, "tcp", "127.0.0.1:0")
	bc := NewBatchedConnSize(context.Background(), client, 256<<10, DefaultBatchWait)
	if !bc.Batch(true) {
		t.Fatal("batch(true) refused on a TCP socket")
	}
	if !bc.vectored() {
		t.Fatal("a TCP socket is not vectored")
	}
	stream, want := testStream(9)
	go sendInPieces(server, stream, func(int) int { return 100 << 10 })
	m := NewMessageReader(bc, 4096)
	m.SetReadAhead(64)
	dst := make([]byte, 80<<10)
	for i, w := range want {
		typ, size, err := m.NextHeader()
		if err != nil || typ != w.typ || size != len(w.body) {
			t.Fatalf("message %d: %q, %d bytes, %v; want %q, %d bytes", i, typ, size, err, w.typ, len(w.body))
		}
		if err := m.ReadBody(dst[:size]); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if !bytes.Equal(dst[:size], w.body) {
			t.Fatalf("message %d: body differs", i)
		}
	}
	if _, _, err := m.NextHeader(); err != io.EOF {
		t.Fatalf("after the last message: %v, want io.EOF", err)
	}
	tlsClient := tls.Client(bc, &tls.Config{InsecureSkipVerify: true})
	under := NewBatchedConn(context.Background(), tlsClient)
	if under.vectored() {
		t.Fatal("a BatchedConn over TLS is vectored")
	}
}

// TestBatchedConnReadPredicted reads chunks of rows over a real TCP socket, each chunk's rows
// predicted after its first and read with readv into their destinations, as the --jobs
// readers do; every fourth chunk ends early (a shrunk file: its last row is shorter than
// predicted) and the stream reads on from there. The sender writes in odd pieces, so the
// reads end anywhere in a header or a value. Every byte arrives where it belongs.
func TestBatchedConnReadPredicted(t *testing.T) {
	client, server := socketPair(t, "tcp", "127.0.0.1:0")
	bc := NewBatchedConnSize(context.Background(), client, 256<<10, DefaultBatchWait)
	if !bc.Batch(true) || !bc.vectored() {
		t.Fatal("a TCP socket is not batched and vectored")
	}
	const rowLen, rows, chunks = 32 << 10, 8, 24
	row := func(c, r, n int) []byte {
		b := binary.BigEndian.AppendUint16(nil, 1)
		b = binary.BigEndian.AppendUint32(b, uint32(n))
		for i := range n {
			b = append(b, byte(c*7+r*3+i))
		}
		return b
	}
	var stream []byte
	var want [][][]byte
	for c := range chunks {
		var values [][]byte
		for r := range rows {
			n := rowLen
			if c%4 == 3 && r == rows-1 {
				n = rowLen / 3
			}
			body := row(c, r, n)
			stream = appendMessage(stream, 'D', body)
			values = append(values, body[6:])
		}
		stream = appendMessage(stream, 'C', []byte("SELECT 8\x00"))
		want = append(want, values)
	}
	go sendInPieces(server, stream, func(i int) int { return 1 + (i*40009)%(100<<10) })
	m := NewMessageReader(bc, 4096)
	m.SetReadAhead(64)
	predicted := 0 // rows read as predicted
	for c := range chunks {
		buf := make([]byte, rows*rowLen)
		got := 0 // rows read
		for got < rows {
			typ, size, err := m.NextHeader()
			if err != nil || typ != 'D' {
				t.Fatalf("chunk %d, row %d: %q, %v", c, got, typ, err)
			}
			var hdr [6]byte
			if err := m.ReadBody(hdr[:]); err != nil {
				t.Fatal(err)
			}
			n := size - 6
			var preds []Predicted
			for r := got + 1; r < rows; r++ {
				h := appendMessage(nil, 'D', row(c, r, 0))[:11]
				binary.BigEndian.PutUint32(h[1:], uint32(10+rowLen))
				binary.BigEndian.PutUint32(h[7:], rowLen)
				preds = append(preds, Predicted{Header: h, Body: buf[r*rowLen : (r+1)*rowLen]})
			}
			whole, err := m.ReadBodyPredicted(buf[got*rowLen:got*rowLen+n], nil, preds)
			if err != nil {
				t.Fatalf("chunk %d, row %d: %v", c, got, err)
			}
			if !bytes.Equal(buf[got*rowLen:got*rowLen+n], want[c][got]) {
				t.Fatalf("chunk %d, row %d differs", c, got)
			}
			for r := got + 1; r <= got+whole; r++ {
				if !bytes.Equal(buf[r*rowLen:(r+1)*rowLen], want[c][r]) {
					t.Fatalf("chunk %d, predicted row %d differs", c, r)
				}
			}
			got += 1 + whole
			predicted += whole
		}
		if typ, body, err := m.Next(); err != nil || typ != 'C' || string(body) != "SELECT 8\x00" {
			t.Fatalf("after chunk %d: %q %q %v", c, typ, body, err)
		}
	}
	if _, _, err := m.NextHeader(); err != io.EOF {
		t.Fatalf("after the last chunk: %v, want io.EOF", err)
	}
	if predicted < chunks*(rows-1)/2 {
		t.Fatalf("%d of %d rows read as predicted", predicted, chunks*rows)
	}
}

// TestSetLowWater: the low-water mark a reader sets while batching is the socket's at once;
// set while not batching, it is the one Batch(true) sets.
func TestSetLowWater(t *testing.T) {
	client, _ := socketPair(t, "tcp", "127.0.0.1:0")
	bc := NewBatchedConnSize(context.Background(), client, 64<<10, DefaultBatchWait)
	bc.SetLowWater(100 << 10)
	if v, ok := RecvLowWater(client); !ok || v != 1 {
		t.Fatalf("before batching: %d, %v; want 1", v, ok)
	}
	if !bc.Batch(true) {
		t.Fatal("batching refused on a TCP socket")
	}
	for _, n := range []int{100 << 10, 512 << 10, 3000, 1} {
		if n != 100<<10 {
			bc.SetLowWater(n)
		}
		if v, ok := RecvLowWater(client); !ok || v != n {
			t.Fatalf("SetLowWater(%d): the socket's mark is %d, %v", n, v, ok)
		}
	}
}

// sendInPieces writes stream to server in writes of at most piece(i) bytes (the i-th write),
// then closes server's sending side.
func sendInPieces(server net.Conn, stream []byte, piece func(i int) int) {
	for i := 0; len(stream) > 0; i++ {
		n := min(len(stream), piece(i))
		if _, err := server.Write(stream[:n]); err != nil {
			return
		}
		stream = stream[n:]
	}
	server.(*net.TCPConn).CloseWrite()
}
