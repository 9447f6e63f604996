package pgformat

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
)

// IncrementalMagic starts an INCREMENTAL file (INCREMENTAL_MAGIC), stored in the server's
// byte order: little-endian on every platform walweave supports.
const IncrementalMagic = 0xd3ae1f0d

// IncrementalPrefix starts the file name part of an incremental relation file:
// "base/5/INCREMENTAL.16384", "base/5/INCREMENTAL.16384_vm.1".
const IncrementalPrefix = "INCREMENTAL."

// DefaultRelsegSize returns RELSEG_SIZE for a default build with block size blcksz: the
// blocks of a 1 GiB relation segment (131072 for 8 kB blocks). Read the real value from
// pg_control (ControlFile.RelsegSize) when the server may be a custom build.
func DefaultRelsegSize(blcksz int) int { return (1 << 30) / blcksz }

// IsIncrementalName reports whether a path relative to the data directory ("/"
// separators) names an INCREMENTAL file where PostgreSQL 17+ puts them: the file name
// starts with "INCREMENTAL." and the file lies directly in global/, in base/<db>/, or in
// pg_tblspc/<oid>/<version dir>/<db>/. It returns the name of the relation file it
// patches (the path without the prefix).
func IsIncrementalName(p string) (relFile string, ok bool) {
	dir, file := path.Split(p)
	name, ok := strings.CutPrefix(file, IncrementalPrefix)
	if !ok || name == "" {
		return "", false
	}
	parts := strings.Split(strings.TrimSuffix(dir, "/"), "/")
	switch {
	case len(parts) == 1 && parts[0] == "global":
	case len(parts) == 2 && parts[0] == "base" && parts[1] != "":
	case len(parts) == 4 && parts[0] == "pg_tblspc" && parts[1] != "" && parts[2] != "" && parts[3] != "":
	default:
		return "", false
	}
	return dir + name, true
}

// IncrementalName returns the INCREMENTAL file name for relation file p ("base/5/16384" ->
// "base/5/INCREMENTAL.16384").
func IncrementalName(p string) string {
	dir, file := path.Split(p)
	return dir + IncrementalPrefix + file
}

// IncrementalHeader is the header of an INCREMENTAL file: after it come BlockCount blocks
// of BLCKSZ bytes, the new contents of the listed blocks, in BlockNumbers order.
type IncrementalHeader struct {
	// BlockCount is the number of blocks the file carries (len(BlockNumbers)).
	BlockCount uint32
	// TruncationBlockLength is the length, in blocks, the relation segment had when the
	// backup was taken: blocks at or past it that are not in BlockNumbers do not exist.
	TruncationBlockLength uint32
	// BlockNumbers are the segment-relative numbers of the blocks that follow.
	BlockNumbers []uint32
}

// ErrIncrementalHeader is wrapped by ReadIncrementalHeader's errors about malformed headers.
var ErrIncrementalHeader = errors.New("malformed INCREMENTAL file header")

// IncrementalHeaderSize returns the bytes the header with count blocks takes, padding
// included: 12 bytes plus 4 per block, rounded up to a multiple of blcksz when count > 0
// (GetIncrementalHeaderSize).
func IncrementalHeaderSize(count uint32, blcksz int) int64 {
	n := int64(12) + 4*int64(count)
	if count > 0 && n%int64(blcksz) != 0 {
		n += int64(blcksz) - n%int64(blcksz)
	}
	return n
}

// IncrementalFileSize returns the size of the INCREMENTAL file with header h: the header
// with its padding and BlockCount blocks (GetIncrementalFileSize).
func IncrementalFileSize(h IncrementalHeader, blcksz int) int64 {
	return IncrementalHeaderSize(h.BlockCount, blcksz) + int64(h.BlockCount)*int64(blcksz)
}

// ReadIncrementalHeader reads an INCREMENTAL file's header from r, padding included, with
// RELSEG_SIZE for a default build (DefaultRelsegSize); r is then at the first block.
func ReadIncrementalHeader(r io.Reader, blcksz int) (IncrementalHeader, error) {
	return ReadIncrementalHeaderLimit(r, blcksz, DefaultRelsegSize(blcksz))
}

// ReadIncrementalHeaderLimit is ReadIncrementalHeader with the cluster's RELSEG_SIZE (from
// pg_control). It checks what pg_combinebackup checks: the magic number, block count and
// truncation block length at most relsegSize; and also that block numbers are below
// relsegSize and do not repeat.
func ReadIncrementalHeaderLimit(r io.Reader, blcksz, relsegSize int) (IncrementalHeader, error) {
	var h IncrementalHeader
	if blcksz < 1024 || blcksz > 1<<15 || blcksz&(blcksz-1) != 0 {
		return h, fmt.Errorf("pgformat: invalid block size %d", blcksz)
	}
	if relsegSize <= 0 {
		return h, fmt.Errorf("pgformat: invalid RELSEG_SIZE %d", relsegSize)
	}
	var fixed [12]byte
	if _, err := io.ReadFull(r, fixed[:]); err != nil {
		return h, fmt.Errorf("%w: %v", ErrIncrementalHeader, shortRead(err))
	}
	if m := binary.LittleEndian.Uint32(fixed[0:]); m != IncrementalMagic {
		return h, fmt.Errorf("%w: bad magic number 0x%x, expected 0x%x", ErrIncrementalHeader, m, IncrementalMagic)
	}
	h.BlockCount = binary.LittleEndian.Uint32(fixed[4:])
	h.TruncationBlockLength = binary.LittleEndian.Uint32(fixed[8:])
	if uint64(h.BlockCount) > uint64(relsegSize) {
		return h, fmt.Errorf("%w: block count %d in excess of segment size %d", ErrIncrementalHeader, h.BlockCount, relsegSize)
	}
	if uint64(h.TruncationBlockLength) > uint64(relsegSize) {
		return h, fmt.Errorf("%w: truncation block length %d in excess of segment size %d", ErrIncrementalHeader, h.TruncationBlockLength, relsegSize)
	}
	if h.BlockCount == 0 {
		return h, nil
	}
	// Read the block numbers and padding in chunks, so a lying count cannot make us
	// allocate before the bytes are there.
	rest := IncrementalHeaderSize(h.BlockCount, blcksz) - 12
	buf := make([]byte, 0, min(rest, 64<<10))
	h.BlockNumbers = make([]uint32, 0, min(int(h.BlockCount), 16<<10))
	var seen map[uint32]struct{}
	if h.BlockCount > 1 {
		seen = make(map[uint32]struct{}, min(int(h.BlockCount), 16<<10))
	}
	need := int64(4) * int64(h.BlockCount)
	var done int64
	for done < rest {
		n := min(rest-done, int64(cap(buf)))
		buf = buf[:n]
		if _, err := io.ReadFull(r, buf); err != nil {
			return h, fmt.Errorf("%w: %v (header of %d blocks is %d bytes)", ErrIncrementalHeader, shortRead(err), h.BlockCount, rest+12)
		}
		for i := int64(0); i < n; i += 4 {
			if done+i >= need {
				break // padding (zeros from the server; not checked, as pg_combinebackup does not)
			}
			b := binary.LittleEndian.Uint32(buf[i:])
			if uint64(b) >= uint64(relsegSize) {
				return h, fmt.Errorf("%w: block number %d in excess of segment size %d", ErrIncrementalHeader, b, relsegSize)
			}
			if seen != nil {
				if _, dup := seen[b]; dup {
					return h, fmt.Errorf("%w: block %d listed twice", ErrIncrementalHeader, b)
				}
				seen[b] = struct{}{}
			}
			h.BlockNumbers = append(h.BlockNumbers, b)
		}
		done += n
	}
	return h, nil
}

func shortRead(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return errors.New("file too short")
	}
	return err
}

// AppendTo appends the header, padding included, to dst (the server's layout; for tests and
// for tools that write incremental files). BlockCount is taken from len(BlockNumbers).
func (h IncrementalHeader) AppendTo(dst []byte, blcksz int) []byte {
	count := uint32(len(h.BlockNumbers))
	dst = binary.LittleEndian.AppendUint32(dst, IncrementalMagic)
	dst = binary.LittleEndian.AppendUint32(dst, count)
	dst = binary.LittleEndian.AppendUint32(dst, h.TruncationBlockLength)
	for _, b := range h.BlockNumbers {
		dst = binary.LittleEndian.AppendUint32(dst, b)
	}
	pad := IncrementalHeaderSize(count, blcksz) - 12 - 4*int64(count)
	for ; pad > 0; pad-- {
		dst = append(dst, 0)
	}
	return dst
}
