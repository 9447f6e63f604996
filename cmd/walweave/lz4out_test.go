package main

import (
	"crypto/rand"
	"errors"
	"testing"
)

// failAfter accepts n bytes, then fails every write.
type failAfter struct {
	n   int
	err error
}

func (f *failAfter) Write(p []byte) (int, error) {
	if len(p) > f.n {
		k := f.n
		f.n = 0
		return k, f.err
	}
	f.n -= len(p)
	return len(p), nil
}

// TestLZ4OutputWriteError: with --compress lz4, a failing output (disk
// full) is reported by the next writes, not only when the frame is finished after the whole
// backup was streamed.
func TestLZ4OutputWriteError(t *testing.T) {
	full := errors.New("no space left on device (test)")
	zw, err := newLZ4Output(&failAfter{n: 1 << 20, err: full}, 0)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	written := 0
	for written < 256<<20 {
		rand.Read(buf) // incompressible: the output fails after about a megabyte
		if _, err = zw.Write(buf); err != nil {
			break
		}
		written += len(buf)
	}
	if !errors.Is(err, full) {
		t.Fatalf("256 MiB written without the output's error (err %v)", err)
	}
	t.Logf("output error reported after %d MiB", written>>20)
	if written > 64<<20 {
		t.Errorf("output error reported only after %d MiB", written>>20)
	}
	if err := zw.Close(); !errors.Is(err, full) {
		t.Errorf("Close: %v, want the output's error", err)
	}
}
