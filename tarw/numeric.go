package tarw

// Header field offsets and sizes (POSIX ustar).
const (
	offName     = 0
	lenName     = 100
	offMode     = 100
	lenMode     = 8
	offUID      = 108
	lenUID      = 8
	offGID      = 116
	lenGID      = 8
	offSize     = 124
	lenSize     = 12
	offMtime    = 136
	lenMtime    = 12
	offChksum   = 148
	lenChksum   = 8
	offType     = 156
	offLinkname = 157
	lenLinkname = 100
	offMagic    = 257
	offVersion  = 263
	offUname    = 265
	lenUname    = 32
	offGname    = 297
	lenGname    = 32
	offDevmajor = 329
	lenDevmajor = 8
	offDevminor = 337
	lenDevminor = 8
	offPrefix   = 345
	lenPrefix   = 155
)

const (
	magicUSTAR = "ustar\x00" // POSIX magic, followed by version "00"
	magicGNU   = "ustar  \x00"
)

// numResult classifies how a numeric field was encoded.
type numResult int

const (
	numOK         numResult = iota
	numGarbage              // not a number
	numNegative             // negative, where not allowed
	numOverflow             // does not fit in int64
	numPGNegative           // PostgreSQL's encoding of a negative value (base-256 of the uint64)
)

// parseNumber parses a numeric header field: all NULs (zero), or octal
// digits, optionally preceded by spaces and terminated by a space or NUL (the
// rest of the field must then be spaces or NULs), or GNU base-256 (first byte 0x80 positive,
// 0xff negative). Negative values are accepted only if allowNeg is set.
func parseNumber(b []byte, allowNeg bool) (int64, numResult) {
	if len(b) > 0 && b[0]&0x80 != 0 {
		var inv byte
		if b[0]&0x40 != 0 {
			inv = 0xff
		}
		var x uint64
		for i, c := range b {
			c ^= inv
			if i == 0 {
				c &= 0x7f
			}
			if x>>56 != 0 {
				return 0, numOverflow
			}
			x = x<<8 | uint64(c)
		}
		if x>>63 != 0 {
			if inv == 0 && allowNeg {
				// The server's print_tar_number writes a negative value
				// (cast to uint64) in base-256 with a positive lead byte.
				return int64(x), numPGNegative
			}
			return 0, numOverflow
		}
		if inv == 0xff {
			if !allowNeg {
				return 0, numNegative
			}
			return ^int64(x), numOK
		}
		return int64(x), numOK
	}
	if allZero(b) {
		return 0, numOK // empty field
	}
	i := 0
	for i < len(b) && b[i] == ' ' {
		i++
	}
	var x int64
	digits := 0
	for ; i < len(b); i++ {
		c := b[i]
		if c < '0' || c > '7' {
			break
		}
		x = x<<3 | int64(c-'0')
		digits++
	}
	if digits == 0 {
		return 0, numGarbage
	}
	for ; i < len(b); i++ {
		if b[i] != ' ' && b[i] != 0 {
			return 0, numGarbage
		}
	}
	return x, numOK
}

// cstring returns the bytes of b up to the first NUL.
func cstring(b []byte) []byte {
	for i, c := range b {
		if c == 0 {
			return b[:i]
		}
	}
	return b
}

// formatOctal writes x into b as zero-padded octal digits followed by a NUL,
// as GNU tar and Go's archive/tar do. It reports false if x does not fit.
func formatOctal(b []byte, x int64) bool {
	if x < 0 {
		return false
	}
	n := len(b) - 1
	if n < 22 && x >= int64(1)<<(3*n) {
		return false
	}
	b[n] = 0
	for i := n - 1; i >= 0; i-- {
		b[i] = byte('0' + x&7)
		x >>= 3
	}
	return true
}

// formatNumber writes x as octal if it fits, else as GNU base-256.
func formatNumber(b []byte, x int64) {
	if formatOctal(b, x) {
		return
	}
	for i := len(b) - 1; i > 0; i-- {
		b[i] = byte(x)
		x >>= 8
	}
	if x < 0 {
		b[0] = 0xff
	} else {
		b[0] = 0x80
	}
}

// checksums returns the unsigned and signed header checksums, computed with
// the checksum field taken as eight spaces.
func checksums(h *[blockSize]byte) (unsigned, signed int64) {
	for i, c := range h {
		if i >= offChksum && i < offChksum+lenChksum {
			c = ' '
		}
		unsigned += int64(c)
		signed += int64(int8(c))
	}
	return unsigned, signed
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
