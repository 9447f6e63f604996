package sqlfetch

import "golang.org/x/sys/cpu"

// useAVX2 is whether checksumRows runs the AVX2 loop.
var useAVX2 = cpu.X86.HasAVX2

// checksumRowsAVX2 mixes rows (len(p)/128 of them) into sums with AVX2 (pagecheck_amd64.s).
//
//go:noescape
func checksumRowsAVX2(sums *[nSums]uint32, p *byte, rows int)

// checksumRows mixes rows of 32 little-endian words into the 32 lanes.
func checksumRows(sums *[nSums]uint32, p []byte) {
	rows := len(p) / (4 * nSums)
	if useAVX2 && rows > 0 {
		checksumRowsAVX2(sums, &p[0], rows)
		return
	}
	checksumRowsGeneric(sums, p)
}
