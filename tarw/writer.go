package tarw

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

const (
	writeBufSize = 1 << 20  // output buffer
	directWrite  = 64 << 10 // data writes at least this large bypass the buffer
	maxOctalSize = 1<<33 - 1
)

var zeros [2 * blockSize]byte

// Writer writes one combined tar archive. Output is buffered; only
// [Writer.Close] writes the end-of-archive trailer, so a caller that fails
// half-way simply does not call Close and the output is recognisably
// incomplete. Errors from the underlying writer are wrapped with %w and are
// sticky.
//
// Synthesized members (not read by a [Reader]) get the owner (uid, gid, user
// and group name) of the most recent member written that was read by a
// Reader, or 0/0 and empty names before any.
type Writer struct {
	w       io.Writer
	buf     []byte
	n       int   // buffered bytes
	written int64 // bytes buffered or written so far
	flushed int64 // bytes the underlying writer accepted

	cur    string // name of the current member, for messages
	size   int64
	remain int64 // data bytes still due for the current member
	pad    int64 // padding due after the current member's data

	closed bool
	err    error // sticky error from the underlying writer

	own   owner
	hdr   []byte // scratch for encoded headers
	pax   []byte // scratch for PAX records
	probe [1]byte
}

// NewWriter returns a Writer writing to w through a 1 MiB buffer.
func NewWriter(w io.Writer) *Writer {
	return &Writer{w: w, buf: make([]byte, writeBufSize)}
}

// Written returns the number of bytes handed to the underlying writer or
// buffered so far: the offset in the output of the next byte written.
func (w *Writer) Written() int64 { return w.written }

// Flushed returns the number of bytes the underlying writer accepted (Written
// less what is still buffered, or what a failed write did not take).
func (w *Writer) Flushed() int64 { return w.flushed }

func (w *Writer) usable() error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return ErrClosed
	}
	return nil
}

// flushBuf writes the buffered bytes to the underlying writer.
func (w *Writer) flushBuf() error {
	if w.err != nil {
		return w.err
	}
	if w.n == 0 {
		return nil
	}
	k, err := w.w.Write(w.buf[:w.n])
	if k > 0 && k <= w.n {
		w.flushed += int64(k)
	}
	if err == nil && k != w.n {
		err = io.ErrShortWrite
	}
	if err != nil {
		w.err = fmt.Errorf("tarw: write: %w", err)
		return w.err
	}
	w.n = 0
	return nil
}

// put buffers p.
func (w *Writer) put(p []byte) error {
	for len(p) > 0 {
		if w.n == len(w.buf) {
			if err := w.flushBuf(); err != nil {
				return err
			}
		}
		k := copy(w.buf[w.n:], p)
		w.n += k
		w.written += int64(k)
		p = p[k:]
	}
	return nil
}

// finishMember checks that the current member got all its data and writes
// its padding.
func (w *Writer) finishMember() error {
	if w.remain > 0 {
		return fmt.Errorf("tarw: member %q: %d of %d data bytes written: %w",
			w.cur, w.size-w.remain, w.size, ErrMissingData)
	}
	if w.pad > 0 {
		if err := w.put(zeros[:w.pad]); err != nil {
			return err
		}
		w.pad = 0
	}
	return nil
}

// WriteHeader starts a new member. The previous member must have received
// all its data; its padding is written first. If m was returned by a
// [Reader] and none of its fields were changed, its original 512-byte header
// is written unchanged; otherwise a new header is encoded (ustar; ustar with
// the prefix field for names longer than 100 bytes; a PAX extended header for
// what ustar cannot hold). A directory's name is written with a trailing "/".
// A member read by a Reader is always re-encoded if its original header name
// was not in normalised form (for example "./pg_wal/archive_status/", or a
// symlink with a trailing "/").
func (w *Writer) WriteHeader(m *Member) error {
	if err := w.usable(); err != nil {
		return err
	}
	if err := w.finishMember(); err != nil {
		return err
	}
	if err := checkMember(m); err != nil {
		return err
	}
	own := w.own
	if m.fromReader {
		own = m.own
		w.own = m.own
	}
	var err error
	if m.canonical && m.unchanged() {
		err = w.put(m.raw[:])
	} else {
		err = w.put(w.encode(m, own))
	}
	if err != nil {
		return err
	}
	w.cur, w.size, w.remain = m.Name, m.Size, m.Size
	w.pad = -m.Size & (blockSize - 1)
	return nil
}

// checkMember validates a member before it is written.
func checkMember(m *Member) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("tarw: member %q: %s", m.Name, fmt.Sprintf(format, args...))
	}
	if msg := checkName(m.Name); msg != "" {
		return bad("invalid name: %s", msg)
	}
	if len(m.Name) > maxNameLen {
		return bad("name longer than %d bytes", maxNameLen)
	}
	switch m.Type {
	case TypeFile, TypeDir, TypeSymlink:
	default:
		return bad("unsupported member type %q", byte(m.Type))
	}
	if m.Size < 0 {
		return bad("negative size %d", m.Size)
	}
	if m.Size != 0 && m.Type != TypeFile {
		return bad("%s with non-zero size %d", m.Type, m.Size)
	}
	if m.Mode < 0 || m.Mode > 07777 {
		return bad("mode %#o is not permission bits", m.Mode)
	}
	if m.Type == TypeSymlink {
		switch {
		case m.Linkname == "":
			return bad("symlink with empty target")
		case len(m.Linkname) > maxNameLen:
			return bad("symlink target longer than %d bytes", maxNameLen)
		}
		for i := 0; i < len(m.Linkname); i++ {
			if m.Linkname[i] == 0 {
				return bad("NUL byte in symlink target")
			}
		}
	} else if m.Linkname != "" {
		return bad("%s with a link target (%q)", m.Type, m.Linkname)
	}
	switch {
	case len(m.Comment) > maxNameLen:
		return bad("comment longer than %d bytes", maxNameLen)
	case strings.IndexByte(m.Comment, 0) >= 0:
		return bad("NUL byte in comment")
	case !utf8.ValidString(m.Comment):
		return bad("comment is not UTF-8")
	}
	return nil
}

// encode returns the encoded header(s) of m, in the Writer's scratch space.
func (w *Writer) encode(m *Member, own owner) []byte {
	name := m.Name
	if m.Type == TypeDir {
		name += "/"
	}
	var mtime int64
	if !m.ModTime.IsZero() {
		mtime = m.ModTime.Unix()
	}

	var h [blockSize]byte
	w.pax = w.pax[:0]
	prefix, base, ok := splitName(name)
	if !ok {
		base = name
		if len(base) > lenName {
			base = base[:lenName]
		}
		prefix = ""
	}
	if m.Type == TypeSymlink {
		link := m.Linkname
		if len(link) > lenLinkname {
			w.pax = appendPAXRecord(w.pax, "linkpath", link)
			link = link[:lenLinkname]
		}
		copy(h[offLinkname:offLinkname+lenLinkname], link)
	}
	if !ok {
		w.pax = appendPAXRecord(w.pax, "path", name)
	}
	if m.Size > maxOctalSize {
		w.pax = appendPAXRecord(w.pax, "size", strconv.FormatInt(m.Size, 10))
	}
	if m.Comment != "" {
		w.pax = appendPAXRecord(w.pax, "comment", m.Comment)
	}
	copy(h[offName:offName+lenName], base)
	copy(h[offPrefix:offPrefix+lenPrefix], prefix)
	formatNumber(h[offMode:offMode+lenMode], m.Mode)
	formatNumber(h[offSize:offSize+lenSize], m.Size)
	h[offType] = byte(m.Type)
	fillCommon(&h, mtime, own)

	w.hdr = w.hdr[:0]
	if len(w.pax) > 0 {
		var x [blockSize]byte
		copy(x[offName:offName+lenName], paxHeaderName(name))
		formatNumber(x[offMode:offMode+lenMode], 0644)
		formatNumber(x[offSize:offSize+lenSize], int64(len(w.pax)))
		x[offType] = 'x'
		fillCommon(&x, mtime, own)
		w.hdr = append(w.hdr, x[:]...)
		w.hdr = append(w.hdr, w.pax...)
		w.hdr = append(w.hdr, zeros[:-len(w.pax)&(blockSize-1)]...)
	}
	return append(w.hdr, h[:]...)
}

// fillCommon sets mtime, owner, magic, device numbers and the checksum.
func fillCommon(h *[blockSize]byte, mtime int64, own owner) {
	formatNumber(h[offMtime:offMtime+lenMtime], mtime)
	formatNumber(h[offUID:offUID+lenUID], own.uid)
	formatNumber(h[offGID:offGID+lenGID], own.gid)
	copy(h[offUname:offUname+lenUname], own.uname)
	copy(h[offGname:offGname+lenGname], own.gname)
	copy(h[offMagic:], magicUSTAR+"00")
	formatOctal(h[offDevmajor:offDevmajor+lenDevmajor], 0)
	formatOctal(h[offDevminor:offDevminor+lenDevminor], 0)
	sum, _ := checksums(h)
	formatOctal(h[offChksum:offChksum+7], sum) // six digits and a NUL
	h[offChksum+7] = ' '
}

// splitName splits name into the ustar prefix and name fields. ok is false
// if it does not fit.
func splitName(name string) (prefix, base string, ok bool) {
	if len(name) <= lenName {
		return "", name, true
	}
	end := len(name)
	if end > lenPrefix+1 {
		end = lenPrefix + 1
	} else if name[end-1] == '/' {
		end--
	}
	for i := end - 1; i > 0; i-- {
		if name[i] == '/' {
			if n := len(name) - i - 1; n > 0 && n <= lenName {
				return name[:i], name[i+1:], true
			}
			return "", "", false
		}
	}
	return "", "", false
}

// appendPAXRecord appends the PAX record "<len> key=value\n".
func appendPAXRecord(b []byte, key, value string) []byte {
	n := len(key) + len(value) + 3 // ' ', '=', '\n'
	digits := len(strconv.Itoa(n))
	total := n + digits
	if len(strconv.Itoa(total)) > digits {
		total++
	}
	b = strconv.AppendInt(b, int64(total), 10)
	b = append(b, ' ')
	b = append(b, key...)
	b = append(b, '=')
	b = append(b, value...)
	return append(b, '\n')
}

// Write writes data of the current member. Writing more than the member's
// Size writes up to the Size and returns an error wrapping ErrWriteTooLong.
func (w *Writer) Write(p []byte) (int, error) {
	if err := w.usable(); err != nil {
		return 0, err
	}
	if int64(len(p)) > w.remain {
		n, err := w.Write(p[:w.remain])
		if err != nil {
			return n, err
		}
		return n, fmt.Errorf("tarw: member %q: %d bytes beyond size %d: %w", w.cur, len(p)-n, w.size, ErrWriteTooLong)
	}
	if len(p) >= directWrite {
		if err := w.flushBuf(); err != nil {
			return 0, err
		}
		k, err := w.w.Write(p)
		if k < 0 || k > len(p) {
			k = 0
		}
		if err == nil && k != len(p) {
			err = io.ErrShortWrite
		}
		w.written += int64(k)
		w.flushed += int64(k)
		w.remain -= int64(k)
		if err != nil {
			w.err = fmt.Errorf("tarw: write: %w", err)
			return k, w.err
		}
		return k, nil
	}
	if err := w.put(p); err != nil {
		return 0, err
	}
	w.remain -= int64(len(p))
	return len(p), nil
}

// ReadFrom reads the current member's data from r until r returns io.EOF,
// straight into the Writer's buffer. If r holds more data than the member's
// remaining size, it returns an error wrapping ErrWriteTooLong. If r ends
// early, ReadFrom returns without error and the next WriteHeader or Close
// reports the missing data. Errors from r are returned unchanged.
func (w *Writer) ReadFrom(r io.Reader) (int64, error) {
	if err := w.usable(); err != nil {
		return 0, err
	}
	var total int64
	empty := 0
	for w.remain > 0 {
		free := len(w.buf) - w.n
		if free == 0 || (int64(free) < w.remain && free < directRead) {
			if err := w.flushBuf(); err != nil {
				return total, err
			}
			free = len(w.buf)
		}
		end := len(w.buf)
		if int64(free) > w.remain {
			end = w.n + int(w.remain)
		}
		k, err := r.Read(w.buf[w.n:end])
		if k < 0 || k > end-w.n {
			return total, errors.New("tarw: reader returned invalid count")
		}
		w.n += k
		w.written += int64(k)
		w.remain -= int64(k)
		total += int64(k)
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
		if k == 0 {
			if empty++; empty >= maxEmpty {
				return total, io.ErrNoProgress
			}
		} else {
			empty = 0
		}
	}
	for range maxEmpty {
		k, err := r.Read(w.probe[:])
		if k > 0 {
			return total, fmt.Errorf("tarw: member %q: more data than its size %d: %w", w.cur, w.size, ErrWriteTooLong)
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
	return total, io.ErrNoProgress
}

// WriteFile writes a complete regular-file member with the given name,
// permission bits, modification time and contents.
func (w *Writer) WriteFile(name string, mode int64, mtime time.Time, data []byte) error {
	m := Member{Name: name, Type: TypeFile, Size: int64(len(data)), Mode: mode, ModTime: mtime}
	if err := w.WriteHeader(&m); err != nil {
		return err
	}
	_, err := w.Write(data)
	return err
}

// Flush writes buffered output to the underlying writer. It does not write
// the current member's padding.
func (w *Writer) Flush() error {
	if w.err != nil {
		return w.err
	}
	return w.flushBuf()
}

// Close pads the last member, writes the 1024-byte end-of-archive trailer
// and flushes. It fails, writing no trailer, if the last member did not get
// all its data. The trailer is written only once; later calls return nil
// (or the sticky write error).
func (w *Writer) Close() error {
	if w.closed {
		return w.err
	}
	if w.err != nil {
		return w.err
	}
	if err := w.finishMember(); err != nil {
		return err
	}
	w.closed = true
	if err := w.put(zeros[:]); err != nil {
		return err
	}
	return w.flushBuf()
}
