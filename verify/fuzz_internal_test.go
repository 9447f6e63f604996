package verify

import (
	"testing"

	fixture "github.com/walweave/walweave/internal/verifytest"
	"github.com/walweave/walweave/pgformat"
)

// FuzzWAL overlays fuzz bytes on a valid WAL segment (the tar-level fuzzer cannot reach the
// WAL code with small inputs: a segment is at least 1 MiB) and runs the page and record
// checks on it: no panic, no hang.
func FuzzWAL(f *testing.F) {
	g := fixture.NewWALGen(1<<20, 42, 1, 3, 1)
	g.Records(300, 20000)
	seg := g.Segment(3)
	f.Add(uint32(0), seg[:64])
	f.Add(uint32(8192-16), seg[8192-16:8192+64])
	f.Add(uint32(40), []byte{0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, off uint32, patch []byte) {
		d := append([]byte(nil), seg...)
		copy(d[int(off)%len(d):], patch)
		w := newWALState()
		w.labelStart, w.labelTLI = 3<<20+40, 1
		w.begin("000000010000000000000003", int64(len(d)))
		for i := 0; i < len(d); i += 100000 {
			w.write(d[i:min(i+100000, len(d))])
		}
		w.end()
		c, _ := NewChecker(Options{})
		w.finish(c, []pgformat.WALRange{{Timeline: 1, Start: 3<<20 + 40, End: 3<<20 + 900000}})
	})
}
