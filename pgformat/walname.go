package pgformat

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// MinWALSegmentSize and MaxWALSegmentSize bound wal_segment_size (initdb --wal-segsize).
const (
	MinWALSegmentSize = 1 << 20
	MaxWALSegmentSize = 1 << 30
)

// ValidWALSegmentSize reports whether n is a WAL segment size PostgreSQL accepts: a power of
// two from 1 MiB to 1 GiB.
func ValidWALSegmentSize(n int) bool {
	return n >= MinWALSegmentSize && n <= MaxWALSegmentSize && n&(n-1) == 0
}

// AppendWALFileName appends the 24-character name of the WAL segment holding lsn on
// timeline tli to dst (XLogFileName: timeline, then the segment number split into "log"
// and "seg" halves, each as 8 upper-case hex digits). segSize must be valid (see
// ValidWALSegmentSize). It does not allocate when dst has room.
func AppendWALFileName(dst []byte, tli uint32, lsn LSN, segSize int) []byte {
	segno := lsn.Segment(segSize)
	perID := segmentsPerXLogID(segSize)
	dst = appendHex32Fixed(dst, tli)
	dst = appendHex32Fixed(dst, uint32(segno/perID))
	return appendHex32Fixed(dst, uint32(segno%perID))
}

func segmentsPerXLogID(segSize int) uint64 { return uint64(0x100000000) / uint64(segSize) }

// WALFileName returns the name of the WAL file (under pg_wal/) holding lsn on timeline tli,
// e.g. "000000010000000000000003".
func WALFileName(tli uint32, lsn LSN, segSize int) string {
	var b [24]byte
	return string(AppendWALFileName(b[:0], tli, lsn, segSize))
}

// WALSegmentFileName returns the name of WAL segment number segno on timeline tli.
func WALSegmentFileName(tli uint32, segno uint64, segSize int) string {
	return WALFileName(tli, LSN(segno*uint64(segSize)), segSize)
}

func isUpperHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

func hex32(s string) uint32 {
	v, _ := strconv.ParseUint(s, 16, 32)
	return uint32(v)
}

// ParseWALFileName parses a 24 hex digit segment name (upper case, as PostgreSQL writes
// them, no suffix) into its timeline and the two halves of the segment number; see
// WALSegmentNo for the segment number itself.
func ParseWALFileName(name string) (tli, log, seg uint32, ok bool) {
	if len(name) != 24 || !isUpperHex(name) {
		return 0, 0, 0, false
	}
	return hex32(name[0:8]), hex32(name[8:16]), hex32(name[16:24]), true
}

// WALSegmentNo returns the segment number of the "log" and "seg" halves of a WAL file name
// (XLogFromFileName), and false when seg is out of range for segSize.
func WALSegmentNo(log, seg uint32, segSize int) (uint64, bool) {
	perID := segmentsPerXLogID(segSize)
	if uint64(seg) >= perID {
		return 0, false
	}
	return uint64(log)*perID + uint64(seg), true
}

// HistoryFileName returns the name of the history file of timeline tli, e.g.
// "00000002.history".
func HistoryFileName(tli uint32) string {
	var b [16]byte
	return string(append(appendHex32Fixed(b[:0], tli), ".history"...))
}

// ParseHistoryFileName reports whether name is "<8 upper-case hex digits>.history" and
// returns the timeline.
func ParseHistoryFileName(name string) (tli uint32, ok bool) {
	if len(name) != 16 || !strings.HasSuffix(name, ".history") || !isUpperHex(name[:8]) {
		return 0, false
	}
	return hex32(name[:8]), true
}

// MaxHistorySize bounds the timeline history file ParseHistory accepts.
const MaxHistorySize = 16 << 20

// HistoryEntry is one line of a timeline history file: timeline Timeline ended at
// SwitchLSN, where the next timeline began, for Reason.
type HistoryEntry struct {
	Timeline  uint32
	SwitchLSN LSN
	Reason    string
}

// ParseHistory parses a timeline history file ("<tli>\t<switch LSN>\t<reason>" lines, as
// writeTimeLineHistory writes them), with the rules of readTimeLineHistory: blank lines
// and lines starting with '#' are skipped, timelines must increase. The entries come in
// file order (oldest timeline first); the file's own timeline is not listed in it.
func ParseHistory(content []byte) ([]HistoryEntry, error) {
	if len(content) > MaxHistorySize {
		return nil, fmt.Errorf("timeline history is larger than %d bytes", MaxHistorySize)
	}
	var out []HistoryEntry
	for i, line := range bytes.Split(content, []byte("\n")) {
		s := strings.TrimSpace(string(line))
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		f := strings.Fields(s)
		if len(f) < 2 {
			return nil, fmt.Errorf("timeline history line %d is not \"timeline<TAB>LSN<TAB>reason\"", i+1)
		}
		t, err := strconv.ParseUint(f[0], 10, 32)
		if err != nil {
			return nil, fmt.Errorf("timeline history line %d: invalid timeline %q", i+1, f[0])
		}
		l, err := ParseLSN(f[1])
		if err != nil {
			return nil, fmt.Errorf("timeline history line %d: %v", i+1, err)
		}
		if n := len(out); n > 0 && uint32(t) <= out[n-1].Timeline {
			return nil, fmt.Errorf("timeline history line %d: timeline %d does not follow %d (timelines must increase)", i+1, t, out[n-1].Timeline)
		}
		reason := ""
		if len(f) > 2 {
			_, rest, _ := strings.Cut(s, f[1])
			reason = strings.TrimSpace(rest)
		}
		out = append(out, HistoryEntry{Timeline: uint32(t), SwitchLSN: l, Reason: reason})
	}
	return out, nil
}
