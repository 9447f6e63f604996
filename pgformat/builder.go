package pgformat

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strconv"
	"time"
	"unicode/utf8"
)

// LastModifiedFormat is the time layout of a manifest's Last-Modified (always GMT).
const LastModifiedFormat = "2006-01-02 15:04:05 GMT"

// ManifestOptions configures a ManifestBuilder.
type ManifestOptions struct {
	// Version is the manifest version: 1 (what PostgreSQL 15 and 16 write) or 2 (17+,
	// with System-Identifier). 0 means 2.
	Version int
	// SystemIdentifier is written by version 2.
	SystemIdentifier uint64
	// Algorithm is the file checksum algorithm (a canonical name, see CanonicalChecksum)
	// for files added with File or AddFileContent; "" means CRC32C, the server's default.
	Algorithm string
	// ForceEncode writes every path as Encoded-Path (BASE_BACKUP's MANIFEST
	// 'force-encode'); otherwise only paths that are not valid UTF-8 are.
	ForceEncode bool
}

// ManifestBuilder writes a backup_manifest in the server's layout (backup_manifest.c): the
// same lines, spacing, escaping, Encoded-Path rule, time format, checksum names and hex
// forms, WAL-Ranges and the final Manifest-Checksum, so that a manifest built from the
// files of a backup equals the server's byte for byte. It streams: memory is constant per
// file (one checksum state) plus the output buffer. It does not check for a path added
// twice. A ManifestBuilder is not safe for concurrent use.
type ManifestBuilder struct {
	w       *bufio.Writer
	sum     hash.Hash
	opts    ManifestOptions
	first   bool
	files   int
	done    bool
	open    bool
	err     error
	scratch []byte
}

// NewManifestBuilder starts a manifest written to w.
func NewManifestBuilder(w io.Writer, opts ManifestOptions) (*ManifestBuilder, error) {
	if opts.Version == 0 {
		opts.Version = 2
	}
	if opts.Version != 1 && opts.Version != 2 {
		return nil, fmt.Errorf("pgformat: manifest version %d: want 1 or 2", opts.Version)
	}
	if opts.Version == 1 && opts.SystemIdentifier != 0 {
		return nil, errors.New("pgformat: a version 1 manifest has no System-Identifier")
	}
	if opts.Algorithm == "" {
		opts.Algorithm = ChecksumCRC32C
	}
	alg, err := CanonicalChecksum(opts.Algorithm)
	if err != nil {
		return nil, fmt.Errorf("pgformat: %w", err)
	}
	opts.Algorithm = alg
	b := &ManifestBuilder{w: bufio.NewWriterSize(w, 64<<10), sum: sha256.New(), opts: opts, first: true}
	s := b.scratch[:0]
	s = append(s, `{ "PostgreSQL-Backup-Manifest-Version": `...)
	s = strconv.AppendInt(s, int64(opts.Version), 10)
	s = append(s, ",\n"...)
	if opts.Version >= 2 {
		s = append(s, `"System-Identifier": `...)
		s = strconv.AppendUint(s, opts.SystemIdentifier, 10)
		s = append(s, ",\n"...)
	}
	s = append(s, `"Files": [`...)
	b.emit(s)
	return b, b.err
}

func (b *ManifestBuilder) emit(p []byte) {
	b.scratch = p[:0]
	if b.err != nil {
		return
	}
	b.sum.Write(p)
	_, b.err = b.w.Write(p)
}

// Files returns the number of files added so far.
func (b *ManifestBuilder) Files() int { return b.files }

// AddFile adds a file whose checksum is already known: alg is its algorithm (NONE or ""
// for none) and checksum its raw bytes as NewChecksum's Sum gives them.
func (b *ManifestBuilder) AddFile(path string, size int64, mtime time.Time, alg string, checksum []byte) error {
	if b.done || b.open {
		return errors.New("pgformat: manifest builder: AddFile after Finish or with a File open")
	}
	if alg == "" {
		alg = ChecksumNone
	}
	alg, err := CanonicalChecksum(alg)
	if err != nil {
		return fmt.Errorf("pgformat: %w", err)
	}
	if alg != ChecksumNone && 2*len(checksum) != ChecksumHexLen(alg) {
		return fmt.Errorf("pgformat: %s checksum of %d bytes for %q", alg, len(checksum), path)
	}
	if path == "" || size < 0 {
		return fmt.Errorf("pgformat: manifest entry %q of size %d", path, size)
	}
	s := b.scratch[:0]
	if b.first {
		s = append(s, '\n')
		b.first = false
	} else {
		s = append(s, ",\n"...)
	}
	if !b.opts.ForceEncode && utf8.ValidString(path) {
		s = append(s, `{ "Path": `...)
		s = appendJSONString(s, path)
		s = append(s, ", "...)
	} else {
		s = append(s, `{ "Encoded-Path": "`...)
		s = hex.AppendEncode(s, []byte(path))
		s = append(s, `", `...)
	}
	s = append(s, `"Size": `...)
	s = strconv.AppendInt(s, size, 10)
	s = append(s, `, "Last-Modified": "`...)
	s = mtime.UTC().AppendFormat(s, LastModifiedFormat)
	s = append(s, '"')
	if alg != ChecksumNone {
		s = append(s, `, "Checksum-Algorithm": "`...)
		s = append(s, alg...)
		s = append(s, `", "Checksum": "`...)
		s = hex.AppendEncode(s, checksum)
		s = append(s, '"')
	}
	s = append(s, " }"...)
	b.emit(s)
	b.files++
	return b.err
}

// AddFileContent adds a file, reading its content from r to compute the checksum with the
// builder's algorithm; r must yield exactly size bytes.
func (b *ManifestBuilder) AddFileContent(path string, size int64, mtime time.Time, r io.Reader) error {
	fw := b.File(path, mtime)
	n, err := io.Copy(fw, r)
	if err != nil {
		b.open = false
		return fmt.Errorf("pgformat: reading %q: %w", path, err)
	}
	if n != size {
		b.open = false
		return fmt.Errorf("pgformat: %q has %d bytes, not %d", path, n, size)
	}
	return fw.Close()
}

// File starts a file whose content is then written to the returned writer; Close adds the
// entry with the bytes counted and their checksum. Only one File is open at a time.
func (b *ManifestBuilder) File(path string, mtime time.Time) *ManifestFileWriter {
	fw := &ManifestFileWriter{b: b, path: path, mtime: mtime}
	if b.opts.Algorithm != ChecksumNone {
		fw.h, _ = NewChecksum(b.opts.Algorithm)
	}
	b.open = true
	return fw
}

// ManifestFileWriter receives one file's content for a ManifestBuilder.
type ManifestFileWriter struct {
	b     *ManifestBuilder
	path  string
	mtime time.Time
	h     hash.Hash
	n     int64
}

// Write adds content.
func (f *ManifestFileWriter) Write(p []byte) (int, error) {
	if f.h != nil {
		f.h.Write(p)
	}
	f.n += int64(len(p))
	return len(p), nil
}

// Close adds the file's entry to the manifest.
func (f *ManifestFileWriter) Close() error {
	if !f.b.open {
		return errors.New("pgformat: manifest file closed twice")
	}
	f.b.open = false
	var sum []byte
	if f.h != nil {
		sum = f.h.Sum(nil)
	}
	return f.b.AddFile(f.path, f.n, f.mtime, f.b.opts.Algorithm, sum)
}

// Finish writes the WAL ranges (newest timeline first, as the server lists them) and the
// Manifest-Checksum, and flushes. It returns the manifest checksum (hex).
func (b *ManifestBuilder) Finish(ranges []WALRange) (string, error) {
	if b.done || b.open {
		return "", errors.New("pgformat: manifest builder: Finish twice or with a File open")
	}
	b.done = true
	s := append(b.scratch[:0], "\n],\n\"WAL-Ranges\": [\n"...)
	for i, r := range ranges {
		if i > 0 {
			s = append(s, ",\n"...)
		}
		s = append(s, `{ "Timeline": `...)
		s = strconv.AppendUint(s, uint64(r.Timeline), 10)
		s = append(s, `, "Start-LSN": "`...)
		s = r.Start.appendText(s)
		s = append(s, `", "End-LSN": "`...)
		s = r.End.appendText(s)
		s = append(s, `" }`...)
	}
	s = append(s, "\n],\n"...)
	b.emit(s)
	var d [sha256.Size]byte
	sum := hex.EncodeToString(b.sum.Sum(d[:0]))
	s = append(b.scratch[:0], `"Manifest-Checksum": "`...)
	s = append(s, sum...)
	s = append(s, "\"}\n"...)
	b.emit(s)
	if b.err == nil {
		b.err = b.w.Flush()
	}
	return sum, b.err
}

// appendJSONString appends s quoted the way PostgreSQL's escape_json does: ", \ and the
// control characters \b \f \n \r \t escaped by name, other bytes below 0x20 as \u00XX
// (lower-case hex), everything else as is.
func appendJSONString(dst []byte, s string) []byte {
	const lhex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '\b':
			dst = append(dst, `\b`...)
		case '\f':
			dst = append(dst, `\f`...)
		case '\n':
			dst = append(dst, `\n`...)
		case '\r':
			dst = append(dst, `\r`...)
		case '\t':
			dst = append(dst, `\t`...)
		case '"':
			dst = append(dst, `\"`...)
		case '\\':
			dst = append(dst, `\\`...)
		default:
			if c < ' ' {
				dst = append(dst, '\\', 'u', '0', '0', lhex[c>>4], lhex[c&0xF])
			} else {
				dst = append(dst, c)
			}
		}
	}
	return append(dst, '"')
}
