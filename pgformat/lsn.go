package pgformat

import (
	"log/slog"
	"strconv"
	"strings"
)

// LSN is a PostgreSQL write-ahead log position (an XLogRecPtr): a byte offset into the WAL.
// Its text form is PostgreSQL's: two hexadecimal halves, "16/B374D848".
type LSN uint64

// ParseLSN parses the textual form PostgreSQL uses for an LSN, two hexadecimal numbers of at
// most 8 digits separated by a slash, e.g. "16/B374D848" (either case; zero padding of
// either half, as PostgreSQL 19 writes it, is accepted).
func ParseLSN(s string) (LSN, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok || hi == "" || lo == "" || len(hi) > 8 || len(lo) > 8 {
		return 0, lsnError(s)
	}
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if err1 != nil || err2 != nil {
		return 0, lsnError(s)
	}
	return LSN(h<<32 | l), nil
}

// LSNError is the error ParseLSN returns.
type LSNError struct{ Input string }

func (e *LSNError) Error() string {
	return "invalid LSN " + strconv.Quote(e.Input) + ": want the form X/X with 1 to 8 hex digits on each side, e.g. 16/B374D848"
}

func lsnError(s string) error { return &LSNError{Input: s} }

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

// appendHex32Fixed appends v as exactly 8 upper-case hex digits, like %08X.
func appendHex32Fixed(dst []byte, v uint32) []byte {
	for shift := 28; shift >= 0; shift -= 4 {
		dst = append(dst, hexDigits[(v>>uint(shift))&0xF])
	}
	return dst
}

// AppendText appends the textual form of l (as String returns it) to dst. It never fails
// and does not allocate when dst has room.
func (l LSN) AppendText(dst []byte) ([]byte, error) {
	return l.appendText(dst), nil
}

func (l LSN) appendText(dst []byte) []byte {
	dst = appendHex32(dst, uint32(l>>32))
	dst = append(dst, '/')
	return appendHex32(dst, uint32(l))
}

// String formats l as PostgreSQL 15 to 18 do (%X/%X): "16/B374D848", "0/0".
func (l LSN) String() string {
	var b [17]byte
	return string(l.appendText(b[:0]))
}

// MarshalText implements encoding.TextMarshaler (JSON prints "0/3000028", not a number).
func (l LSN) MarshalText() ([]byte, error) { return l.appendText(make([]byte, 0, 17)), nil }

// UnmarshalText implements encoding.TextUnmarshaler with ParseLSN.
func (l *LSN) UnmarshalText(b []byte) error {
	v, err := ParseLSN(string(b))
	if err != nil {
		return err
	}
	*l = v
	return nil
}

// LogValue implements slog.LogValuer: logs show the text form ("0/3000028"), in JSON too.
func (l LSN) LogValue() slog.Value { return slog.StringValue(l.String()) }

// SegmentStart returns the LSN of the first byte of the WAL segment holding l. segSize must
// be a valid WAL segment size (see ValidWALSegmentSize).
func (l LSN) SegmentStart(segSize int) LSN { return l &^ LSN(segSize-1) }

// Segment returns the number of the WAL segment holding l (PostgreSQL's XLByteToSeg).
func (l LSN) Segment(segSize int) uint64 { return uint64(l) / uint64(segSize) }

// SegmentOffset returns l's byte offset inside its WAL segment (XLogSegmentOffset).
func (l LSN) SegmentOffset(segSize int) int { return int(uint64(l) & uint64(segSize-1)) }
