package sqlfetch

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// TestPageChecksumWithoutAVX2 runs pageChecksum as a CPU without AVX2 does (the Go loop) and
// holds it to pageChecksumGeneric, as TestChecksumRows holds the AVX2 code.
func TestPageChecksumWithoutAVX2(t *testing.T) {
	defer func(v bool) { useAVX2 = v }(useAVX2)
	useAVX2 = false
	rng := rand.New(rand.NewPCG(7, 8))
	for _, size := range []int{128, 1024, 8192, 32768} {
		page := make([]byte, size)
		for n := 0; n < 50; n++ {
			for i := 0; i < len(page); i += 8 {
				binary.LittleEndian.PutUint64(page[i:], rng.Uint64())
			}
			blk := rng.Uint32()
			if got, want := pageChecksum(page, blk), pageChecksumGeneric(page, blk); got != want {
				t.Fatalf("page %d of %d bytes, block %d: %04x, generic %04x", n, size, blk, got, want)
			}
		}
	}
}
