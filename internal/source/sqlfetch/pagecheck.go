package sqlfetch

import (
	"encoding/binary"
	"path"
	"strconv"
	"strings"
)

// Page checksums, as PostgreSQL computes them (storage/checksum_impl.h): 32 parallel FNV-1a
// style lanes over the page read as little-endian 32-bit words, with pd_checksum taken as
// zero, folded by XOR, mixed with the block number, reduced to 1..65535. Written here from
// the algorithm's description; the tests check it against pages of a real cluster.

const (
	nSums    = 32
	fnvPrime = 16777619
)

var checksumBaseOffsets = [nSums]uint32{
	0x5B1F36E9, 0xB8525960, 0x02AB50AA, 0x1DE66D2A,
	0x79FF467A, 0x9BB9F8A3, 0x217E7CD2, 0x83E13D2C,
	0xF8D4474F, 0xE39EB970, 0x42C6AE16, 0x993216FA,
	0x7B093B5D, 0x98DAFF3C, 0xF718902A, 0x0B1C9CDB,
	0xE58F764B, 0x187636BC, 0x5D7B3BB1, 0xE73DE7DE,
	0x92BEC979, 0xCCA6C0B2, 0x304A0979, 0x85AA43D4,
	0x783125BB, 0x6CA8EAA2, 0xE407EAC6, 0x4B5CFC3E,
	0x9FBF8C76, 0x15CA20BE, 0xF2CA9FD3, 0x959BD756,
}

// pageChecksum returns the checksum PostgreSQL stores in pd_checksum for page (BLCKSZ bytes,
// a multiple of 128) at absolute block number blkno (segment number x RELSEG_SIZE + block).
// Where the CPU has AVX2 the whole page is done in one call (pageChecksumFast: the 32 lanes
// in four 8-lane registers, as a C compiler vectorises the server's loop); elsewhere the
// first row of 32 words (where pd_checksum is) is mixed in here, the others by checksumRows.
// The tests hold the two to each other (TestChecksumRows).
func pageChecksum(page []byte, blkno uint32) uint16 {
	if sum, ok := pageChecksumFast(page, blkno); ok {
		return sum
	}
	sums := checksumBaseOffsets
	rows := len(page) / (4 * nSums)
	if rows == 0 {
		return finishChecksum(&sums, blkno)
	}
	row := page[: 4*nSums : 4*nSums]
	for j := 0; j < nSums; j++ {
		v := binary.LittleEndian.Uint32(row[4*j:])
		if j == 2 { // bytes 8..11: pd_checksum (8..9, taken as zero) and pd_flags
			v &^= 0xffff
		}
		t := sums[j] ^ v
		sums[j] = t*fnvPrime ^ (t >> 17)
	}
	checksumRows(&sums, page[4*nSums:rows*4*nSums])
	return finishChecksum(&sums, blkno)
}

// checksumRows mixes rows of 32 little-endian words into the 32 lanes.
func checksumRows(sums *[nSums]uint32, p []byte) {
	for i := 0; i+4*nSums <= len(p); i += 4 * nSums {
		row := p[i : i+4*nSums : i+4*nSums]
		for j := 0; j < nSums; j++ {
			t := sums[j] ^ binary.LittleEndian.Uint32(row[4*j:])
			sums[j] = t*fnvPrime ^ (t >> 17)
		}
	}
}

// finishChecksum runs two rounds of zeros, folds the lanes, mixes in the block number and
// reduces the result to 1..65535.
func finishChecksum(sums *[nSums]uint32, blkno uint32) uint16 {
	var result uint32
	for j := 0; j < nSums; j++ {
		s := sums[j]
		for k := 0; k < 2; k++ {
			t := s
			s = t*fnvPrime ^ (t >> 17)
		}
		result ^= s
	}
	result ^= blkno
	return uint16(result%65535 + 1)
}

// pageLSN is pd_lsn: xlogid (high half) then xrecoff, each in host (little-endian) order.
func pageLSN(page []byte) uint64 {
	return uint64(binary.LittleEndian.Uint32(page[0:]))<<32 | uint64(binary.LittleEndian.Uint32(page[4:]))
}

// pageIsNew is PageIsNew: pd_upper is zero (a page never initialised, all zeros when new).
func pageIsNew(page []byte) bool { return binary.LittleEndian.Uint16(page[14:]) == 0 }

// pageOK applies the server's rule to one page: a new page, or one changed at or after the
// backup's start (its full-page image in the backup's WAL replaces it), is not checked.
func pageOK(page []byte, blkno uint32, startLSN uint64) bool {
	if pageIsNew(page) || pageLSN(page) >= startLSN {
		return true
	}
	return binary.LittleEndian.Uint16(page[8:]) == pageChecksum(page, blkno)
}

// checksummed reports whether BASE_BACKUP verifies the page checksums of a file
// (is_checksummed_file, basebackup.c 15..18): files under global/ and base/ and in
// tablespaces, except pg_control, pg_filenode.map, pg_internal.init* and PG_VERSION. rel is
// the path relative to the data directory (pg_tblspc/<oid>/... for tablespaces). It returns
// the segment number mixed into the block numbers, and false for a malformed segment suffix
// (the server refuses those).
func checksummed(rel string) (segno uint32, ok bool) {
	if !strings.HasPrefix(rel, "global/") && !strings.HasPrefix(rel, "base/") && !strings.HasPrefix(rel, "pg_tblspc/") {
		return 0, false
	}
	name := path.Base(rel)
	switch {
	case name == "pg_control", name == "pg_filenode.map", name == "PG_VERSION",
		strings.HasPrefix(name, "pg_internal.init"):
		return 0, false
	}
	if _, seg, found := strings.Cut(name, "."); found {
		n, err := strconv.ParseUint(seg, 10, 32)
		if err != nil || n == 0 {
			return 0, false
		}
		return uint32(n), true
	}
	return 0, true
}
