package basebackup

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"go.uber.org/goleak"
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

func zstdFrame(t *testing.T, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, err := zstd.NewWriter(&buf, zstd.WithEncoderConcurrency(2))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// archiveDecoder decompresses a frame (lz4 or zstd), is reused from archive to archive, names
// the archive when the compressed data is bad, passes the connection's own errors through
// unchanged, and leaves no goroutine behind.
func TestArchiveDecoder(t *testing.T) {
	defer goleak.VerifyNone(t)
	want := bytes.Repeat([]byte("0123456789abcdef"), 100000)
	for method, frame := range map[string][]byte{"lz4": lz4Frame(t, want), "zstd": zstdFrame(t, want)} {
		t.Run(method, func(t *testing.T) {
			z, err := newArchiveDecoder(method)
			if err != nil {
				t.Fatal(err)
			}
			for _, name := range []string{"16384.tar." + method, "base.tar." + method} {
				if err := z.reset(name, bytes.NewReader(frame)); err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(z)
				if err != nil || !bytes.Equal(got, want) {
					t.Fatalf("%s: decompressed %d bytes, %v", name, len(got), err)
				}
			}
			for name, input := range map[string][]byte{
				"not compressed":   []byte("this is not a compressed frame at all"),
				"garbage after":    append(append([]byte{}, frame...), "tail"...),
				"truncated":        frame[:len(frame)/2],
				"flipped checksum": append(append([]byte{}, frame[:len(frame)-1]...), frame[len(frame)-1]^0xff),
			} {
				arch := "16384.tar." + method
				if err := z.reset(arch, bytes.NewReader(input)); err == nil {
					_, err = io.ReadAll(z)
					if err == nil || !strings.Contains(err.Error(), "decompress the server's archive "+arch) {
						t.Errorf("%s: err = %v", name, err)
					}
				} else if !strings.Contains(err.Error(), arch) {
					t.Errorf("%s: reset err = %v", name, err)
				}
			}

			lost := errors.New("connection lost: reset by peer")
			if err := z.reset("base.tar."+method, io.MultiReader(bytes.NewReader(frame[:100]), &failing{lost})); err != nil && err != lost {
				t.Fatal(err)
			}
			if _, err := io.ReadAll(z); err != lost {
				t.Fatalf("connection error came back as %v", err)
			}
		})
	}
}

func TestParseCompression(t *testing.T) {
	for in, want := range map[string]string{
		"": "|", "none": "|", "lz4": "lz4|", "lz4:3": "lz4|level=3", "LZ4:level=12": "lz4|level=12",
		"zstd": "zstd|", "zstd:5": "zstd|level=5", "zstd:level=3,workers=4": "zstd|level=3,workers=4",
		"zstd:workers=2": "zstd|workers=2", "zstd:level=-5": "zstd|level=-5", "zstd:level=9,long": "zstd|level=9,long",
		"zstd:long=false,workers=1": "zstd|workers=1",
	} {
		m, d, err := ParseCompression(in)
		if err != nil || m+"|"+d != want {
			t.Errorf("ParseCompression(%q) = %q, %q, %v; want %s", in, m, d, err, want)
		}
	}
	for _, in := range []string{"none:1", "gzip", "lz4:13", "lz4:0", "lz4:workers=2", "zstd:23", "zstd:level=x",
		"zstd:workers=-1", "zstd:workers=999", "zstd:", "zstd:foo=1", "zstd:level=1,level=2", "brotli", "lz4:long"} {
		if _, _, err := ParseCompression(in); err == nil {
			t.Errorf("ParseCompression(%q) accepted", in)
		}
	}
}

type failing struct{ err error }

func (f *failing) Read([]byte) (int, error) { return 0, f.err }
