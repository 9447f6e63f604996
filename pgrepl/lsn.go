package pgrepl

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// LSN is a PostgreSQL write-ahead log position (an XLogRecPtr): a byte offset into the WAL.
type LSN uint64

// ParseLSN parses the textual form PostgreSQL uses for an LSN, two hexadecimal numbers of at
// most 8 digits separated by a slash, e.g. "16/B374D848" (either case).
func ParseLSN(s string) (LSN, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok || hi == "" || lo == "" || len(hi) > 8 || len(lo) > 8 {
		return 0, fmt.Errorf("pgrepl: invalid LSN %q: want the form X/X with 1 to 8 hex digits on each side, e.g. 16/B374D848", s)
	}
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("pgrepl: invalid LSN %q: want the form X/X with 1 to 8 hex digits on each side, e.g. 16/B374D848", s)
	}
	return LSN(h<<32 | l), nil
}

const hexDigits = "0123456789ABCDEF"

// appendHex32 appends v in upper-case hex without leading zeros ("0" for zero), like %X.
func appendHex32(dst []byte, v uint32) []byte {
	var b [8]byte
	i := len(b)
	for {
		i--
		b[i] = hexDigits[v&0xF]
		v >>= 4
		if v == 0 {
			break
		}
	}
	return append(dst, b[i:]...)
}

// AppendText appends the textual form of l (as String returns it) to dst.
func (l LSN) AppendText(dst []byte) ([]byte, error) {
	return l.appendText(dst), nil
}

func (l LSN) appendText(dst []byte) []byte {
	dst = appendHex32(dst, uint32(l>>32))
	dst = append(dst, '/')
	return appendHex32(dst, uint32(l))
}

// String formats l as PostgreSQL does (%X/%X): "16/B374D848", "0/0".
func (l LSN) String() string {
	var b [17]byte
	return string(l.appendText(b[:0]))
}

// SegmentStart returns the LSN of the first byte of the WAL segment holding l. segSize must be a
// power of two (see ParseWALSegmentSize).
func SegmentStart(l LSN, segSize int) LSN {
	return l &^ LSN(segSize-1)
}

// segmentNumber is XLByteToSeg: the number of the segment holding l.
func segmentNumber(l LSN, segSize int) uint64 {
	return uint64(l) / uint64(segSize)
}

func appendHex32Fixed(dst []byte, v uint32) []byte {
	for shift := 28; shift >= 0; shift -= 4 {
		dst = append(dst, hexDigits[(v>>uint(shift))&0xF])
	}
	return dst
}

// AppendWALFileName appends the 24-character WAL file name of the segment holding l on timeline
// tli to dst (XLogFileName: timeline, then the segment number split into "log" and "seg" parts,
// each as 8 upper-case hex digits).
func AppendWALFileName(dst []byte, tli uint32, l LSN, segSize int) []byte {
	segno := segmentNumber(l, segSize)
	perID := uint64(0x100000000) / uint64(segSize)
	dst = appendHex32Fixed(dst, tli)
	dst = appendHex32Fixed(dst, uint32(segno/perID))
	return appendHex32Fixed(dst, uint32(segno%perID))
}

// WALFileName returns the name of the WAL file (under pg_wal/) holding l on timeline tli, e.g.
// "000000010000000000000003". segSize must be a power of two (see ParseWALSegmentSize).
func WALFileName(tli uint32, l LSN, segSize int) string {
	var b [24]byte
	return string(AppendWALFileName(b[:0], tli, l, segSize))
}

// HistoryFileName returns the name of the history file of timeline tli, e.g. "00000002.history".
func HistoryFileName(tli uint32) string {
	var b [16]byte
	return string(append(appendHex32Fixed(b[:0], tli), ".history"...))
}
