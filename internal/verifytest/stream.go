// Package verifytest builds walweave-contract backup streams for the tests of verify and
// restore: synthetic ones (no server needed, valid WAL included) and ones made from a real
// server's pg_basebackup -Ft -X fetch output. It is test support, not product code.
package verifytest

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"path"
	"regexp"
	"strings"
	"time"
)

// Member is one tar member of a stream.
type Member struct {
	Name     string // without "./" and without a directory's trailing "/"
	Type     byte   // tar.TypeReg, tar.TypeDir, tar.TypeSymlink, ...
	Mode     int64
	Linkname string
	Data     []byte
	// Source, when set, streams the content instead of Data (Size bytes).
	Source func(w io.Writer) error
	Size   int64
	// Comment is the member's PAX comment record ("" for none), as walweave writes on
	// backup_label (pgformat.BackupOrigin).
	Comment string
}

// Len is the content size.
func (m *Member) Len() int64 {
	if m.Source != nil {
		return m.Size
	}
	return int64(len(m.Data))
}

// Stream is a backup stream as a list of members, easy to mutate.
type Stream struct {
	Members []Member
	// NoTrailer leaves out the tar end-of-archive marker.
	NoTrailer bool
}

// Clone returns a copy whose member list can be changed freely. Member data is shared:
// change it through Edit.
func (s *Stream) Clone() *Stream {
	return &Stream{Members: append([]Member(nil), s.Members...), NoTrailer: s.NoTrailer}
}

// Edit gives the member named name a private copy of its data and returns it, for changing
// it in place.
func (s *Stream) Edit(name string) []byte {
	m := s.Get(name)
	m.Data = append([]byte(nil), m.Data...)
	return m.Data
}

// Index returns the position of the member named name, or -1.
func (s *Stream) Index(name string) int {
	for i := range s.Members {
		if s.Members[i].Name == name {
			return i
		}
	}
	return -1
}

// Get returns the member named name; it panics if there is none.
func (s *Stream) Get(name string) *Member {
	i := s.Index(name)
	if i < 0 {
		panic("verifytest: no member " + name)
	}
	return &s.Members[i]
}

// Remove removes the member named name; it panics if there is none.
func (s *Stream) Remove(name string) {
	i := s.Index(name)
	if i < 0 {
		panic("verifytest: no member " + name)
	}
	s.Members = append(s.Members[:i], s.Members[i+1:]...)
}

// Insert inserts m before position i.
func (s *Stream) Insert(i int, m Member) {
	s.Members = append(s.Members[:i], append([]Member{m}, s.Members[i:]...)...)
}

var segRE = regexp.MustCompile(`^pg_wal/[0-9A-F]{24}$`)

// Segments returns the names of the WAL segment members, in stream order.
func (s *Stream) Segments() []string {
	var out []string
	for _, m := range s.Members {
		if segRE.MatchString(m.Name) {
			out = append(out, m.Name)
		}
	}
	return out
}

// Files returns the names of the regular members that are not WAL segments.
func (s *Stream) Files() []string {
	var out []string
	for _, m := range s.Members {
		if m.Type == tar.TypeReg && !segRE.MatchString(m.Name) {
			out = append(out, m.Name)
		}
	}
	return out
}

// WriteTo writes the stream as one tar archive.
func (s *Stream) WriteTo(w io.Writer) (int64, error) {
	cw := &countWriter{w: w}
	tw := tar.NewWriter(cw)
	mtime := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, m := range s.Members {
		h := &tar.Header{Name: m.Name, Typeflag: m.Type, Mode: m.Mode, Size: m.Len(), ModTime: mtime,
			Uname: "postgres", Gname: "postgres", Linkname: m.Linkname}
		switch m.Type {
		case tar.TypeDir:
			h.Name += "/"
			h.Size = 0
			if h.Mode == 0 {
				h.Mode = 0o700
			}
		case tar.TypeReg:
			if h.Mode == 0 {
				h.Mode = 0o600
			}
		default:
			h.Size = 0
			if h.Mode == 0 {
				h.Mode = 0o777
			}
		}
		if m.Comment != "" {
			h.PAXRecords = map[string]string{"comment": m.Comment}
		}
		if err := tw.WriteHeader(h); err != nil {
			return cw.n, err
		}
		if m.Type != tar.TypeReg {
			continue
		}
		if m.Source != nil {
			if err := m.Source(tw); err != nil {
				return cw.n, err
			}
		} else if _, err := tw.Write(m.Data); err != nil {
			return cw.n, err
		}
	}
	if s.NoTrailer {
		err := tw.Flush()
		return cw.n, err
	}
	err := tw.Close()
	return cw.n, err
}

// Bytes returns the stream as one tar archive.
func (s *Stream) Bytes() []byte {
	var b bytes.Buffer
	offs := s.MemberOffsets()
	b.Grow(int(offs[len(offs)-1]) + 10240)
	if _, err := s.WriteTo(&b); err != nil {
		panic(err)
	}
	return b.Bytes()
}

// MemberOffsets returns the byte offset of each member's header in Bytes() (plus the offset
// of the end-of-archive marker last), for cutting a stream at member boundaries.
func (s *Stream) MemberOffsets() []int64 {
	var out []int64
	off := int64(0)
	for _, m := range s.Members {
		out = append(out, off)
		hdr := int64(512)
		if len(m.Name)+1 > 100 || m.Comment != "" { // PAX or prefix; recompute exactly
			var b bytes.Buffer
			one := &Stream{Members: []Member{{Name: m.Name, Type: m.Type, Mode: m.Mode, Comment: m.Comment}}, NoTrailer: true}
			if _, err := one.WriteTo(&b); err != nil {
				panic(err)
			}
			hdr = int64(b.Len())
		}
		off += hdr
		if m.Type == tar.TypeReg {
			off += (m.Len() + 511) &^ 511
		}
	}
	return append(out, off)
}

// CountingReader counts the bytes read through it (N): how far a consumer read a stream.
type CountingReader struct {
	R io.Reader
	N int64
}

// Read implements io.Reader.
func (c *CountingReader) Read(p []byte) (int, error) {
	n, err := c.R.Read(p)
	c.N += int64(n)
	return n, err
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// ManifestFile is one entry for BuildManifest.
type ManifestFile struct {
	Path      string
	Size      int64
	Algorithm string // "" for none
	Checksum  string
}

// BuildManifest writes a manifest the way the server's backup_manifest.c does, line by line,
// with its Manifest-Checksum.
func BuildManifest(version int, sysid uint64, files []ManifestFile, ranges []string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "{ \"PostgreSQL-Backup-Manifest-Version\": %d,\n", version)
	if version >= 2 {
		fmt.Fprintf(&b, "\"System-Identifier\": %d,\n", sysid)
	}
	b.WriteString("\"Files\": [")
	for i, f := range files {
		if i > 0 {
			b.WriteString(",")
		}
		p := fmt.Sprintf("\"Path\": %q", f.Path)
		if !validPath(f.Path) {
			p = fmt.Sprintf("\"Encoded-Path\": %q", hex.EncodeToString([]byte(f.Path)))
		}
		fmt.Fprintf(&b, "\n{ %s, \"Size\": %d, \"Last-Modified\": \"2026-01-02 03:04:05 GMT\"", p, f.Size)
		if f.Algorithm != "" {
			fmt.Fprintf(&b, ", \"Checksum-Algorithm\": %q, \"Checksum\": %q", f.Algorithm, f.Checksum)
		}
		b.WriteString(" }")
	}
	b.WriteString("\n],\n\"WAL-Ranges\": [\n")
	b.WriteString(strings.Join(ranges, ",\n"))
	b.WriteString("\n],\n")
	return FinishManifest(b.Bytes())
}

func validPath(p string) bool {
	for _, r := range p {
		if r < 0x20 || r == '"' || r == '\\' || r >= 0x7f {
			return false
		}
	}
	return path.Clean(p) == p
}

// FinishManifest appends the Manifest-Checksum line to a manifest body that ends just
// before it.
func FinishManifest(body []byte) []byte {
	sum := sha256.Sum256(body)
	out := append([]byte(nil), body...)
	return append(out, fmt.Sprintf("\"Manifest-Checksum\": \"%s\"}\n", hex.EncodeToString(sum[:]))...)
}

// Rechecksum recomputes the Manifest-Checksum of a manifest (after an edit).
func Rechecksum(manifest []byte) []byte {
	i := bytes.LastIndex(manifest, []byte("\"Manifest-Checksum\""))
	if i < 0 {
		panic("verifytest: no Manifest-Checksum")
	}
	return FinishManifest(manifest[:i])
}
