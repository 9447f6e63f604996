package verify_test

import (
	"archive/tar"
	"bytes"
	"context"
	"testing"
	"time"

	fixture "github.com/walweave/walweave/internal/verifytest"
	"github.com/walweave/walweave/verify"
)

// smallStream is a stream without WAL segments (small enough for a fuzz corpus).
func smallStream() *fixture.Stream {
	s := fixture.Synth(fixture.SynthOptions{Files: 2, FileSize: 300, Tablespace: true})
	for _, seg := range s.Segments() {
		s.Remove(seg)
	}
	return s
}

// FuzzVerify: no input makes Stream panic or hang, and an error is only ever a read error.
func FuzzVerify(f *testing.F) {
	s := smallStream()
	f.Add(s.Bytes())
	t := s.Clone()
	t.NoTrailer = true
	f.Add(t.Bytes())
	u := s.Clone()
	u.Insert(1, fixture.Member{Name: "pg_wal/000000010000000000000003", Type: tar.TypeReg, Data: make([]byte, 8192)})
	u.Insert(1, fixture.Member{Name: "evil", Type: tar.TypeSymlink, Linkname: "/"})
	f.Add(u.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		rep, err := verify.Stream(ctx, bytes.NewReader(data), verify.Options{MaxProblems: 50})
		if err != nil {
			t.Fatalf("error on an in-memory stream: %v", err)
		}
		if rep == nil || !rep.Complete {
			t.Fatal("no complete report")
		}
		_ = rep.String()
		if rep.OK() && len(data) < 1024 {
			t.Fatal("a stream shorter than its trailer is OK")
		}
	})
}
