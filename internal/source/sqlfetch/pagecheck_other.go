//go:build !amd64

package sqlfetch

// checksumRows mixes rows of 32 little-endian words into the 32 lanes.
func checksumRows(sums *[nSums]uint32, p []byte) { checksumRowsGeneric(sums, p) }

// pageChecksumFast has no vectorised code here: pageChecksum does the work.
func pageChecksumFast([]byte, uint32) (uint16, bool) { return 0, false }
