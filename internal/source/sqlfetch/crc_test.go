package sqlfetch

import (
	"hash/crc32"
	"math/rand/v2"
	"testing"

	"github.com/walweave/walweave/pgformat"
)

// TestCRC32CCombine checks the combination against hash/crc32 over the whole, for splits
// into pieces of every kind of length (empty, one byte, odd, a chunk).
func TestCRC32CCombine(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	data := make([]byte, 3<<20+12345)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	for _, sizes := range [][]int{{0}, {1}, {7, 0, 1}, {1 << 20, 1 << 20, 1 << 20}, {12345, 1, 65536}, {len(data)}} {
		var crc uint32
		off := 0
		for _, n := range sizes {
			crc = crc32cCombine(crc, crc32.Checksum(data[off:off+n], pgformat.Castagnoli), int64(n))
			off += n
		}
		if want := crc32.Checksum(data[:off], pgformat.Castagnoli); crc != want {
			t.Errorf("pieces %v: combined %08x, want %08x", sizes, crc, want)
		}
	}
	for range 200 {
		n := rng.IntN(len(data))
		a, b := data[:n], data[n:]
		got := crc32cCombine(crc32.Checksum(a, pgformat.Castagnoli), crc32.Checksum(b, pgformat.Castagnoli), int64(len(b)))
		if want := crc32.Checksum(data, pgformat.Castagnoli); got != want {
			t.Fatalf("split at %d: combined %08x, want %08x", n, got, want)
		}
	}
}
