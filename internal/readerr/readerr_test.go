package readerr

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

// served is a BufferServer over a string, failing with err at its end.
type served struct {
	s   string
	err error
}

func (s *served) Read(p []byte) (int, error) { return 0, errors.New("Read called on a BufferServer") }
func (s *served) ServesBuffers()             {}
func (s *served) WriteTo(w io.Writer) (int64, error) {
	n, err := io.WriteString(w, s.s)
	if err != nil {
		return int64(n), err
	}
	return int64(n), s.err
}

type failWriter struct{}

func (failWriter) Write(p []byte) (int, error) { return 0, errors.New("disk full") }

// TestWriteTo: a BufferServer's WriteTo is used, and an error is the reader's only when the
// writer did not fail; other readers go through Read, as before.
func TestWriteTo(t *testing.T) {
	var out bytes.Buffer
	in := &Reader{R: &served{s: "abc"}}
	if n, err := io.Copy(&out, in); err != nil || n != 3 || out.String() != "abc" || in.Err != nil {
		t.Fatalf("copy: %d %v %q, reader error %v", n, err, out.String(), in.Err)
	}
	in = &Reader{R: &served{s: "abc", err: errors.New("connection reset")}}
	if _, err := io.Copy(io.Discard, in); err == nil || in.Err == nil {
		t.Fatalf("a failing reader: copy error %v, reader error %v", err, in.Err)
	}
	in = &Reader{R: &served{s: "abc"}}
	if _, err := io.Copy(failWriter{}, in); err == nil || in.Err != nil {
		t.Fatalf("a failing writer: copy error %v, reader error %v (want none)", err, in.Err)
	}
	in = &Reader{R: strings.NewReader("plain")}
	out.Reset()
	if _, err := io.Copy(&out, in); err != nil || out.String() != "plain" {
		t.Fatalf("plain reader: %v %q", err, out.String())
	}
}
