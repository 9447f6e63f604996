package verify

import (
	"fmt"
	"strconv"
	"strings"
)

// LSN is a PostgreSQL WAL location (an XLogRecPtr).
type LSN uint64

// String formats l the way PostgreSQL does: two hexadecimal halves, "16/B374D848".
func (l LSN) String() string { return fmt.Sprintf("%X/%X", uint32(l>>32), uint32(l)) }

// ParseLSN parses PostgreSQL's "X/Y" notation.
func ParseLSN(s string) (LSN, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok || hi == "" || lo == "" || len(hi) > 8 || len(lo) > 8 {
		return 0, fmt.Errorf("invalid LSN %q", s)
	}
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("invalid LSN %q", s)
	}
	return LSN(h<<32 | l), nil
}

// walFileName is XLogFileName: the 24 hex digit name of segment segno on timeline tli.
func walFileName(tli uint32, segno uint64, segSize int64) string {
	perID := uint64(0x100000000 / segSize)
	return fmt.Sprintf("%08X%08X%08X", tli, segno/perID, segno%perID)
}

// parseWALFileName parses a 24 hex digit segment name (upper case, as PostgreSQL writes them)
// into its timeline and the two halves of the segment number.
func parseWALFileName(name string) (tli uint32, log, seg uint32, ok bool) {
	if len(name) != 24 {
		return 0, 0, 0, false
	}
	for i := 0; i < 24; i++ {
		c := name[i]
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'F') {
			return 0, 0, 0, false
		}
	}
	t, _ := strconv.ParseUint(name[0:8], 16, 32)
	l, _ := strconv.ParseUint(name[8:16], 16, 32)
	s, _ := strconv.ParseUint(name[16:24], 16, 32)
	return uint32(t), uint32(l), uint32(s), true
}

// isHistoryFileName reports whether name is "<8 hex>.history" and returns its timeline.
func isHistoryFileName(name string) (uint32, bool) {
	if len(name) != 16 || !strings.HasSuffix(name, ".history") {
		return 0, false
	}
	for i := 0; i < 8; i++ {
		c := name[i]
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'F') {
			return 0, false
		}
	}
	t, _ := strconv.ParseUint(name[:8], 16, 32)
	return uint32(t), true
}
