package sqlfetch

import "golang.org/x/sys/cpu"

// useAVX2 is whether pageChecksum runs the AVX2 code.
var useAVX2 = cpu.X86.HasAVX2

// checksumPageAVX2 checksums a whole page of rows (>= 1) rows with AVX2 (pagecheck_amd64.s):
// the lanes from init, the first row's first 8 words masked, the two rows of zeros and the
// fold; the block number is left to the caller.
//
//go:noescape
func checksumPageAVX2(page *byte, rows int, init *[nSums]uint32, mask *[8]uint32, zeros *[256]byte) uint32

// firstRowMask clears pd_checksum (bytes 8..9, the low half of word 2) in a page's first row.
var firstRowMask = [8]uint32{0xffffffff, 0xffffffff, 0xffff0000, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}

// zeroRows are the two rows of zeros the server mixes in after a page's last row.
var zeroRows [2 * 4 * nSums]byte

// pageChecksumFast is pageChecksum in one call of the AVX2 code, where the CPU has it; ok is
// false elsewhere.
func pageChecksumFast(page []byte, blkno uint32) (uint16, bool) {
	rows := len(page) / (4 * nSums)
	if !useAVX2 || rows == 0 {
		return 0, false
	}
	r := checksumPageAVX2(&page[0], rows, &checksumBaseOffsets, &firstRowMask, &zeroRows) ^ blkno
	return uint16(r%65535 + 1), true
}
