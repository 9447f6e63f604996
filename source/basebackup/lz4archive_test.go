package basebackup

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/pierrec/lz4/v4"
	"github.com/walweave/walweave/internal/lz4frame"
)

func lz4Frame(t *testing.T, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := lz4.NewWriter(&buf)
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// lz4Archive decompresses a frame, names the archive when the compressed data is bad, and
// passes the connection's own errors through unchanged.
func TestLZ4Archive(t *testing.T) {
	want := bytes.Repeat([]byte("0123456789abcdef"), 100000)
	frame := lz4Frame(t, want)
	z := &lz4Archive{zr: lz4frame.NewReader(nil)}

	z.reset("base.tar.lz4", bytes.NewReader(frame))
	got, err := io.ReadAll(z)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("decompressed %d bytes, %v", len(got), err)
	}

	for name, input := range map[string][]byte{
		"not lz4":          []byte("this is not an lz4 frame at all"),
		"garbage after":    append(append([]byte{}, frame...), "tail"...),
		"truncated":        frame[:len(frame)/2],
		"flipped checksum": append(append([]byte{}, frame[:len(frame)-1]...), frame[len(frame)-1]^0xff),
	} {
		z.reset("16384.tar.lz4", bytes.NewReader(input))
		_, err := io.ReadAll(z)
		if err == nil || !strings.Contains(err.Error(), "decompress the server's archive 16384.tar.lz4") {
			t.Errorf("%s: err = %v", name, err)
		}
	}

	lost := errors.New("connection lost: reset by peer")
	z.reset("base.tar.lz4", io.MultiReader(bytes.NewReader(frame[:100]), &failing{lost}))
	if _, err := io.ReadAll(z); err != lost {
		t.Fatalf("connection error came back as %v", err)
	}
}

type failing struct{ err error }

func (f *failing) Read([]byte) (int, error) { return 0, f.err }
