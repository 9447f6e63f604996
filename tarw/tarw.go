// Package tarw reads the ustar archives a PostgreSQL 15+ server sends in
// response to BASE_BACKUP and writes one combined tar archive from them.
//
// A [Reader] parses one server archive (base.tar or <oid>.tar) from an
// arbitrarily chunked byte stream, checks every header strictly and reports
// where each member starts and ends, so that other members (WAL segments) can
// be woven in between. A [Writer] writes the combined archive: members read by
// a Reader and left unchanged are passed through with their original 512-byte
// header; changed members (for example re-rooted tablespace members, see
// [Reroot]) and synthesized files are encoded anew as ustar, ustar with the
// prefix field, or ustar preceded by a PAX extended header, a form GNU tar,
// bsdtar, Python's tarfile and Go's archive/tar all read. Only [Writer.Close]
// writes the end-of-archive trailer, so an archive that failed half-way is
// never mistaken for a complete one.
package tarw

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"time"
)

// Type is a tar member type flag.
type Type byte

// The member types the server sends and the Writer writes.
const (
	// TypeFile is a regular file.
	TypeFile Type = '0'
	// TypeDir is a directory.
	TypeDir Type = '5'
	// TypeSymlink is a symbolic link.
	TypeSymlink Type = '2'
)

// String returns a short name of the type ("file", "dir", "symlink").
func (t Type) String() string {
	switch t {
	case TypeFile:
		return "file"
	case TypeDir:
		return "dir"
	case TypeSymlink:
		return "symlink"
	}
	return fmt.Sprintf("type %q", byte(t))
}

const blockSize = 512

// maxNameLen bounds member names and link targets the Writer accepts.
const maxNameLen = 4096

// Member describes one archive member.
//
// Name is normalised: relative, without a leading "./" and without a trailing
// "/" (directories and symlink entries from the server have a trailing slash;
// "./pg_wal/archive_status/" becomes "pg_wal/archive_status").
//
// A Member returned by [Reader.Next] remembers its original header; if none of
// its exported fields (other than Offset) are changed before it is given to
// [Writer.WriteHeader], the original header is written byte for byte.
type Member struct {
	Name     string    // normalised member name
	Type     Type      // TypeFile, TypeDir or TypeSymlink
	Size     int64     // data bytes (0 for directories and symlinks)
	Mode     int64     // permission bits (mode & 07777)
	ModTime  time.Time // modification time, whole seconds
	Linkname string    // symlink target (symlinks only)
	// Comment is the PAX "comment" record: free text tar readers keep or ignore and never
	// extract (walweave's streams carry the source cluster's identity on backup_label, see
	// pgformat.BackupOrigin). "" writes none.
	Comment string
	Offset  int64 // offset of the header in the input archive (for error messages)

	fromReader bool
	canonical  bool // raw is a header the Writer may pass through as is
	raw        [blockSize]byte
	orig       memberFields
	own        owner
}

// memberFields is the copy of the parsed fields used to detect changes.
type memberFields struct {
	name     string
	typ      Type
	size     int64
	mode     int64
	modTime  time.Time
	linkname string
	comment  string
}

// owner is the ownership information of a header.
type owner struct {
	uid, gid     int64
	uname, gname string
}

func (m *Member) fields() memberFields {
	return memberFields{m.Name, m.Type, m.Size, m.Mode, m.ModTime, m.Linkname, m.Comment}
}

// unchanged reports whether m came from a Reader and still has the parsed
// field values.
func (m *Member) unchanged() bool {
	o := &m.orig
	return m.fromReader && m.Name == o.name && m.Type == o.typ && m.Size == o.size &&
		m.Mode == o.mode && m.ModTime.Equal(o.modTime) && m.Linkname == o.linkname &&
		m.Comment == o.comment
}

// Reroot places m under prefix (for example "pg_tblspc/16384"): its Name
// becomes prefix + "/" + Name. A Writer re-encodes the header of a re-rooted
// member. Leading "./" and trailing "/" of prefix are ignored; an empty prefix
// leaves m unchanged.
func Reroot(m *Member, prefix string) {
	prefix = strings.TrimPrefix(prefix, "./")
	prefix = strings.TrimRight(prefix, "/")
	if prefix == "" {
		return
	}
	m.Name = prefix + "/" + m.Name
}

// FormatError is the error returned for input that is not a well-formed server
// archive. It names the archive (when set with [Reader.SetArchiveName]), the
// input offset of the offending header or byte, and the member when known.
type FormatError struct {
	Archive string // archive name, "" if not set
	Member  string // member name, "" if not known
	Offset  int64  // input offset of the header (or of the offending byte)
	Msg     string // what is wrong
	Err     error  // underlying error (io.ErrUnexpectedEOF for truncation), or nil
}

// Error formats the error as
// `tarw: base.tar offset 1536: member "global/1262": <msg>`.
func (e *FormatError) Error() string {
	var b strings.Builder
	b.WriteString("tarw: ")
	if e.Archive != "" {
		b.WriteString(e.Archive)
		b.WriteByte(' ')
	}
	fmt.Fprintf(&b, "offset %d: ", e.Offset)
	if e.Member != "" {
		fmt.Fprintf(&b, "member %q: ", e.Member)
	}
	b.WriteString(e.Msg)
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the underlying error.
func (e *FormatError) Unwrap() error { return e.Err }

// Errors returned by the Writer.
var (
	// ErrWriteTooLong is returned when more data is written to a member than
	// its Size.
	ErrWriteTooLong = errors.New("tarw: write beyond member size")
	// ErrMissingData is returned when a member gets fewer data bytes than its
	// Size before the next header or Close.
	ErrMissingData = errors.New("tarw: member data incomplete")
	// ErrClosed is returned when a Writer is used after Close.
	ErrClosed = errors.New("tarw: writer closed")
)

// checkName reports why name is not an acceptable normalised member name, or
// "" if it is.
func checkName(name string) string {
	switch {
	case name == "":
		return "empty name"
	case name[0] == '/':
		return "absolute path"
	case strings.IndexByte(name, 0) >= 0:
		return "NUL byte in name"
	}
	for rest := name; ; {
		comp, tail, more := strings.Cut(rest, "/")
		switch comp {
		case "..":
			return `name contains a ".." component`
		case ".":
			return `name contains a "." component`
		case "":
			if more || rest == "" {
				return "name contains an empty component"
			}
		}
		if !more {
			return ""
		}
		rest = tail
	}
}

// paxHeaderName returns the name of the PAX extended header for name, as Go's
// archive/tar does: dir/PaxHeaders.0/file.
func paxHeaderName(name string) string {
	dir, file := path.Split(name)
	n := path.Join(dir, "PaxHeaders.0", file)
	if len(n) > 100 {
		n = n[:100]
	}
	return n
}
