package walarchive

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"

	"github.com/walweave/walweave/internal/lz4frame"
)

// Algorithm is a compression algorithm for complete segments.
type Algorithm uint8

// Compression algorithms.
const (
	None Algorithm = iota
	Zstd
	LZ4
)

const (
	zstdSuffix = ".zst"
	lz4Suffix  = ".lz4"
)

// Compression says how complete segments are stored: as they are, as one zstd frame (.zst) or
// as one LZ4 frame (.lz4). Partial segments and history files are never compressed.
type Compression struct {
	Algorithm Algorithm
	// Level is the zstd level (1 to 22, 0: the default, 3); ignored for LZ4.
	Level int
}

// ParseCompression parses none, zstd, zstd:LEVEL or lz4.
func ParseCompression(s string) (Compression, error) {
	name, lvl, hasLevel := strings.Cut(strings.ToLower(strings.TrimSpace(s)), ":")
	var c Compression
	switch name {
	case "", "none":
		c.Algorithm = None
	case "zstd":
		c.Algorithm = Zstd
	case "lz4":
		c.Algorithm = LZ4
	default:
		return Compression{}, fmt.Errorf("walarchive: compression %q: want none, zstd[:LEVEL] or lz4", s)
	}
	if hasLevel {
		n, err := strconv.Atoi(lvl)
		if c.Algorithm != Zstd || err != nil || n < 1 || n > 22 {
			return Compression{}, fmt.Errorf("walarchive: compression %q: a level is given as zstd:LEVEL with LEVEL from 1 to 22", s)
		}
		c.Level = n
	}
	return c, nil
}

// Suffix is the file name suffix of a segment stored with c ("" for none).
func (c Compression) Suffix() string {
	switch c.Algorithm {
	case Zstd:
		return zstdSuffix
	case LZ4:
		return lz4Suffix
	}
	return ""
}

// String is the form ParseCompression reads.
func (c Compression) String() string {
	switch c.Algorithm {
	case Zstd:
		if c.Level > 0 {
			return "zstd:" + strconv.Itoa(c.Level)
		}
		return "zstd"
	case LZ4:
		return "lz4"
	}
	return "none"
}

// compressor compresses segments for one archiver goroutine, reusing its encoder and buffer.
type compressor struct {
	c   Compression
	enc *zstd.Encoder
	lz  *lz4.Writer
	buf bytes.Buffer
	out []byte
}

func newCompressor(c Compression) (*compressor, error) {
	z := &compressor{c: c}
	switch c.Algorithm {
	case Zstd:
		lvl := zstd.SpeedDefault
		if c.Level > 0 {
			lvl = zstd.EncoderLevelFromZstd(c.Level)
		}
		enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(lvl), zstd.WithEncoderConcurrency(1), zstd.WithEncoderCRC(true))
		if err != nil {
			return nil, fmt.Errorf("walarchive: zstd: %w", err)
		}
		z.enc = enc
	case LZ4:
		z.lz = lz4.NewWriter(nil)
		if err := z.lz.Apply(lz4.BlockSizeOption(lz4.Block4Mb), lz4.ChecksumOption(true), lz4.ConcurrencyOption(1)); err != nil {
			return nil, fmt.Errorf("walarchive: lz4: %w", err)
		}
	}
	return z, nil
}

// compress returns data compressed; the result is valid until the next call.
func (z *compressor) compress(data []byte) ([]byte, error) {
	switch z.c.Algorithm {
	case Zstd:
		z.out = z.enc.EncodeAll(data, z.out[:0])
		return z.out, nil
	case LZ4:
		z.buf.Reset()
		z.lz.Reset(&z.buf)
		if _, err := z.lz.Write(data); err != nil {
			return nil, fmt.Errorf("walarchive: lz4: %w", err)
		}
		if err := z.lz.Close(); err != nil {
			return nil, fmt.Errorf("walarchive: lz4: %w", err)
		}
		return z.buf.Bytes(), nil
	}
	return data, nil
}

func (z *compressor) close() {
	if z.enc != nil {
		_ = z.enc.Close()
	}
}

var (
	zstdMagic = []byte{0x28, 0xB5, 0x2F, 0xFD}
	lz4Magic  = []byte{0x04, 0x22, 0x4D, 0x18}
)

var zstdDecoders = sync.Pool{New: func() any {
	d, _ := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(1<<31))
	return d
}}

// errCorrupt is wrapped by errors about archive files that cannot be decoded or checked.
var errCorrupt = errors.New("corrupt archive file")

// decode returns data decompressed when it starts with a zstd or LZ4 frame magic (a WAL segment
// starts with a WAL page magic, a history file with text: neither looks like one), at most max
// bytes.
func decode(data []byte, max int64) ([]byte, error) {
	switch {
	case bytes.HasPrefix(data, zstdMagic):
		d := zstdDecoders.Get().(*zstd.Decoder)
		defer zstdDecoders.Put(d)
		if err := d.Reset(bytes.NewReader(data)); err != nil {
			return nil, fmt.Errorf("%w: zstd: %v", errCorrupt, err)
		}
		out, err := io.ReadAll(io.LimitReader(d, max+1))
		if err != nil {
			return nil, fmt.Errorf("%w: zstd: %v", errCorrupt, err)
		}
		if int64(len(out)) > max {
			return nil, fmt.Errorf("%w: decompresses to more than %d bytes", errCorrupt, max)
		}
		return out, nil
	case bytes.HasPrefix(data, lz4Magic):
		out, err := io.ReadAll(io.LimitReader(lz4frame.NewReader(bytes.NewReader(data)), max+1))
		if err != nil {
			return nil, fmt.Errorf("%w: lz4: %v", errCorrupt, err)
		}
		if int64(len(out)) > max {
			return nil, fmt.Errorf("%w: decompresses to more than %d bytes", errCorrupt, max)
		}
		return out, nil
	}
	return data, nil
}
