package verify_test

import (
	"bufio"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	fixture "github.com/walweave/walweave/internal/verifytest"
	"github.com/walweave/walweave/verify"
)

// BenchmarkVerify measures Stream's throughput on a synthetic stream (1 GiB, 64 MiB with
// -short) of 16 MiB data files and 16 MiB WAL segments full of valid records, written to a
// temporary file first, against plain reading of the same file ("read").
func BenchmarkVerify(b *testing.B) {
	bigFiles := 60
	records := 60000
	if testing.Short() {
		bigFiles, records = 2, 12000
	}
	s := fixture.Synth(fixture.SynthOptions{SegSize: 16 << 20, BigFiles: bigFiles, BigFileSize: 16 << 20,
		WALRecords: records, WALMaxBytes: 2000})
	path := filepath.Join(b.TempDir(), "stream.tar")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	size, err := s.WriteTo(w)
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = f.Close()
	}
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("stream: %d MiB, %d WAL segments", size>>20, len(s.Segments()))
	s = nil
	b.Run("read", func(b *testing.B) {
		b.SetBytes(size)
		buf := make([]byte, 1<<20)
		for i := 0; i < b.N; i++ {
			f, err := os.Open(path)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{f}, buf); err != nil {
				b.Fatal(err)
			}
			f.Close()
		}
	})
	b.Run("verify", func(b *testing.B) {
		b.SetBytes(size)
		for i := 0; i < b.N; i++ {
			f, err := os.Open(path)
			if err != nil {
				b.Fatal(err)
			}
			rep, err := verify.Stream(context.Background(), struct{ io.Reader }{f}, verify.Options{})
			f.Close()
			if err != nil || !rep.OK() {
				b.Fatalf("%v\n%s", err, rep)
			}
		}
	})
}
