package tarw

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

const (
	readBufSize = 256 << 10 // internal read buffer
	directRead  = 16 << 10  // reads at least this large bypass the buffer when it is empty
	maxEmpty    = 100       // consecutive (0, nil) reads before io.ErrNoProgress
)

// Reader reads one server archive (a ustar archive ending in a 1024-byte zero
// trailer) from an io.Reader that may deliver the bytes in chunks of any size.
// Every header is checked; malformed input gives a [*FormatError]. A Reader
// never allocates memory based on a size read from the input.
type Reader struct {
	src     io.Reader
	archive string

	buf  []byte
	r, w int   // buf[r:w] is read from src but not consumed
	pos  int64 // input offset of buf[r]

	srcEOF bool
	srcErr error // non-EOF error from src, returned once the buffer is drained

	cur    *Member // current member, nil before the first and after the last
	remain int64   // data bytes of cur not yet consumed
	pad    int64   // padding bytes after cur's data

	done bool  // trailer read
	err  error // sticky error

	lastUname, lastGname string // to share the usual "postgres" strings
}

// NewReader returns a Reader reading one archive from r.
func NewReader(r io.Reader) *Reader {
	return &Reader{src: r, buf: make([]byte, readBufSize)}
}

// SetArchiveName sets the archive name used in error messages (for example
// "base.tar" or "16384.tar").
func (r *Reader) SetArchiveName(name string) { r.archive = name }

// InputOffset returns the number of input bytes consumed so far: the data
// and headers returned or skipped, not bytes read ahead into the buffer.
func (r *Reader) InputOffset() int64 { return r.pos }

func (r *Reader) formatErr(member string, off int64, err error, format string, args ...any) *FormatError {
	return &FormatError{Archive: r.archive, Member: member, Offset: off, Msg: fmt.Sprintf(format, args...), Err: err}
}

// readSrc reads from the source once, turning repeated empty reads into
// io.ErrNoProgress and remembering EOF and errors.
func (r *Reader) readSrc(p []byte) (int, error) {
	if r.srcEOF {
		return 0, io.EOF
	}
	if r.srcErr != nil {
		return 0, r.srcErr
	}
	for range maxEmpty {
		n, err := r.src.Read(p)
		if n < 0 || n > len(p) {
			r.srcErr = fmt.Errorf("tarw: %s: source returned invalid count %d from Read", r.where(), n)
			return 0, r.srcErr
		}
		if err != nil {
			if err == io.EOF {
				r.srcEOF = true
			} else {
				r.srcErr = fmt.Errorf("tarw: %s: read: %w", r.where(), err)
			}
			if n > 0 {
				return n, nil
			}
			if r.srcEOF {
				return 0, io.EOF
			}
			return 0, r.srcErr
		}
		if n > 0 {
			return n, nil
		}
	}
	r.srcErr = fmt.Errorf("tarw: %s: read: %w", r.where(), io.ErrNoProgress)
	return 0, r.srcErr
}

func (r *Reader) where() string {
	if r.archive != "" {
		return fmt.Sprintf("%s offset %d", r.archive, r.pos+int64(r.w-r.r))
	}
	return fmt.Sprintf("offset %d", r.pos+int64(r.w-r.r))
}

// fill makes sure at least n (<= len(buf)) bytes are buffered. It returns
// io.EOF if the input ends first, or the source's error.
func (r *Reader) fill(n int) error {
	for r.w-r.r < n {
		if r.r == r.w {
			r.r, r.w = 0, 0
		} else if len(r.buf)-r.r < n {
			r.w = copy(r.buf, r.buf[r.r:r.w])
			r.r = 0
		}
		m, err := r.readSrc(r.buf[r.w:])
		r.w += m
		if err != nil {
			return err
		}
	}
	return nil
}

func (r *Reader) consume(n int) {
	r.r += n
	r.pos += int64(n)
}

// skip consumes n input bytes.
func (r *Reader) skip(n int64) error {
	for n > 0 {
		if r.r == r.w {
			if err := r.fill(1); err != nil {
				return err
			}
		}
		k := int64(r.w - r.r)
		if k > n {
			k = n
		}
		r.consume(int(k))
		n -= k
	}
	return nil
}

// truncated returns the error for input ending inside the current member.
func (r *Reader) truncated() error {
	m := r.cur
	if r.remain > 0 {
		return r.formatErr(m.Name, m.Offset, io.ErrUnexpectedEOF,
			"size %d runs past the end of the input (%d data bytes missing)", m.Size, r.remain)
	}
	return r.formatErr(m.Name, m.Offset, io.ErrUnexpectedEOF,
		"input ends inside the padding after the member data")
}

// Next advances to the next member, skipping any unread data and padding of
// the current one. It returns io.EOF once the 1024-byte end-of-archive
// trailer has been read and checked and the input has ended; the trailer is
// consumed, never returned. Zero bytes after the trailer are accepted if they
// form whole 512-byte blocks; anything else after it is an error. Input that
// ends without the trailer gives an error wrapping io.ErrUnexpectedEOF.
func (r *Reader) Next() (*Member, error) {
	if r.err != nil {
		return nil, r.err
	}
	if r.done {
		return nil, io.EOF
	}
	if r.cur != nil {
		if err := r.skip(r.remain + r.pad); err != nil {
			if err == io.EOF {
				err = r.truncatedAfterSkip()
			}
			r.err = err
			return nil, err
		}
		r.cur, r.remain, r.pad = nil, 0, 0
	}
	off := r.pos
	if err := r.fill(blockSize); err != nil {
		if err == io.EOF {
			if r.w == r.r {
				err = r.formatErr("", off, io.ErrUnexpectedEOF, "input ends without the end-of-archive trailer")
			} else {
				err = r.formatErr("", off, io.ErrUnexpectedEOF, "input ends inside a header (%d of 512 bytes)", r.w-r.r)
			}
		}
		r.err = err
		return nil, err
	}
	block := r.buf[r.r : r.r+blockSize]
	if allZero(block) {
		r.consume(blockSize)
		err := r.trailer(off)
		if err != io.EOF {
			r.err = err
		}
		return nil, err
	}
	var pax *paxOverrides
	if block[offType] == typePAX {
		var err error
		if pax, err = r.readPAX((*[blockSize]byte)(block), off); err != nil {
			r.err = err
			return nil, err
		}
		off = r.pos
		if err := r.fill(blockSize); err != nil {
			if err == io.EOF {
				err = r.formatErr("", off, io.ErrUnexpectedEOF, "input ends after a PAX extended header, before the header it extends")
			}
			r.err = err
			return nil, err
		}
		block = r.buf[r.r : r.r+blockSize]
		if block[offType] == typePAX {
			err := r.formatErr("", off, nil, "two PAX extended headers in a row")
			r.err = err
			return nil, err
		}
	}
	m, err := r.parse((*[blockSize]byte)(block), off)
	if err == nil && pax != nil {
		err = r.applyPAX(m, pax)
	}
	if err != nil {
		r.err = err
		return nil, err
	}
	r.consume(blockSize)
	r.cur = m
	r.remain = m.Size
	r.pad = -m.Size & (blockSize - 1)
	return m, nil
}

// truncatedAfterSkip is called when skipping remain+pad bytes hit EOF; skip
// has consumed what there was, so r.pos tells how far the input went.
func (r *Reader) truncatedAfterSkip() error {
	m := r.cur
	r.remain = 0
	if dataEnd := m.Offset + blockSize + m.Size; r.pos < dataEnd {
		r.remain = dataEnd - r.pos
	}
	return r.truncated()
}

// trailer checks the second trailer block and whatever follows it. The first
// zero block, at off, has been consumed.
func (r *Reader) trailer(off int64) error {
	if err := r.fill(blockSize); err != nil {
		if err == io.EOF {
			return r.formatErr("", off, io.ErrUnexpectedEOF,
				"input ends after %d of the 1024 bytes of the end-of-archive trailer", blockSize+r.w-r.r)
		}
		return err
	}
	if i := firstNonZero(r.buf[r.r : r.r+blockSize]); i >= 0 {
		return r.formatErr("", r.pos+int64(i), nil,
			"non-zero byte 0x%02x where the end-of-archive trailer should be (trailer starts at offset %d)", r.buf[r.r+i], off)
	}
	r.consume(blockSize)
	start := r.pos
	for {
		if r.r == r.w {
			if err := r.fill(1); err != nil {
				if err != io.EOF {
					return err
				}
				break
			}
		}
		if i := firstNonZero(r.buf[r.r:r.w]); i >= 0 {
			return r.formatErr("", r.pos+int64(i), nil,
				"non-zero byte 0x%02x after the end-of-archive trailer (trailer at offset %d)", r.buf[r.r+i], off)
		}
		r.consume(r.w - r.r)
	}
	if extra := r.pos - start; extra%blockSize != 0 {
		return r.formatErr("", start, nil,
			"%d zero bytes after the end-of-archive trailer are not whole 512-byte blocks", extra)
	}
	r.done = true
	return io.EOF
}

func firstNonZero(b []byte) int {
	for i, c := range b {
		if c != 0 {
			return i
		}
	}
	return -1
}

// parse checks and parses the header block h found at input offset off.
func (r *Reader) parse(h *[blockSize]byte, off int64) (*Member, error) {
	bad := func(name string, format string, args ...any) (*Member, error) {
		return nil, r.formatErr(name, off, nil, format, args...)
	}
	rawName := string(cstring(h[offName : offName+lenName]))

	stored, res := parseNumber(h[offChksum:offChksum+lenChksum], false)
	if res != numOK {
		return bad(rawName, "invalid header checksum field %q", h[offChksum:offChksum+lenChksum])
	}
	unsigned, signed := checksums(h)
	if stored != unsigned && stored != signed {
		return bad(rawName, "header checksum mismatch (stored %07o, computed %07o)", stored, unsigned)
	}

	gnu := false
	switch {
	case string(h[offMagic:offMagic+8]) == magicUSTAR+"00":
	case string(h[offMagic:offMagic+8]) == magicGNU:
		gnu = true
	default:
		return bad(rawName, "not a ustar header (magic %q)", h[offMagic:offMagic+8])
	}
	if !gnu {
		if prefix := cstring(h[offPrefix : offPrefix+lenPrefix]); len(prefix) > 0 {
			rawName = string(prefix) + "/" + rawName
		}
	}

	typ := Type(h[offType])
	switch typ {
	case TypeFile, TypeDir, TypeSymlink:
	default:
		return bad(rawName, "member type %q not supported (only regular files '0', directories '5' and symlinks '2')", byte(typ))
	}

	if strings.HasPrefix(rawName, "/") {
		return bad(rawName, "absolute member name")
	}
	name := strings.TrimPrefix(rawName, "./")
	if strings.HasSuffix(name, "/") {
		if typ == TypeFile {
			return bad(rawName, `regular file name ends in "/"`)
		}
		name = name[:len(name)-1]
	}
	if msg := checkName(name); msg != "" {
		return bad(rawName, "invalid member name: %s", msg)
	}

	mode, res := parseNumber(h[offMode:offMode+lenMode], false)
	if res != numOK || mode >= 1<<21 {
		return bad(rawName, "invalid mode field %q", h[offMode:offMode+lenMode])
	}
	uid, res := parseNumber(h[offUID:offUID+lenUID], false)
	if res != numOK {
		return bad(rawName, "invalid uid field %q", h[offUID:offUID+lenUID])
	}
	gid, res := parseNumber(h[offGID:offGID+lenGID], false)
	if res != numOK {
		return bad(rawName, "invalid gid field %q", h[offGID:offGID+lenGID])
	}
	size, res := parseNumber(h[offSize:offSize+lenSize], false)
	if res != numOK {
		return bad(rawName, "invalid size field %q", h[offSize:offSize+lenSize])
	}
	if size != 0 && typ != TypeFile {
		return bad(rawName, "%s with non-zero size %d", typ, size)
	}
	mtime, mres := parseNumber(h[offMtime:offMtime+lenMtime], true)
	if mres != numOK && mres != numPGNegative {
		return bad(rawName, "invalid mtime field %q", h[offMtime:offMtime+lenMtime])
	}
	if _, res := parseNumber(h[offDevmajor:offDevmajor+lenDevmajor], false); res != numOK {
		return bad(rawName, "invalid devmajor field %q", h[offDevmajor:offDevmajor+lenDevmajor])
	}
	if _, res := parseNumber(h[offDevminor:offDevminor+lenDevminor], false); res != numOK {
		return bad(rawName, "invalid devminor field %q", h[offDevminor:offDevminor+lenDevminor])
	}
	var link string
	if typ == TypeSymlink {
		l := cstring(h[offLinkname : offLinkname+lenLinkname])
		if len(l) == 0 {
			return bad(rawName, "symlink with empty target")
		}
		link = string(l)
	}

	m := &Member{
		Name:       name,
		Type:       typ,
		Size:       size,
		Mode:       mode & 07777,
		ModTime:    time.Unix(mtime, 0).UTC(),
		Linkname:   link,
		Offset:     off,
		fromReader: true,
		raw:        *h,
	}
	written := name
	if typ == TypeDir {
		written = name + "/"
	}
	m.canonical = !gnu && rawName == written && mres == numOK && mode <= 07777 && plainHeader(h)
	m.orig = m.fields()
	m.own = owner{uid: uid, gid: gid, uname: r.intern(&r.lastUname, h[offUname:offUname+lenUname]),
		gname: r.intern(&r.lastGname, h[offGname:offGname+lenGname])}
	return m, nil
}

// plainHeader reports whether the numeric fields of h are in a form every
// tar reader parses alike (octal digits from the first byte, or base-256),
// the link name is empty unless it is a symlink and the unused bytes after
// the prefix are zero. Only such headers are passed through unchanged; other
// accepted headers are re-encoded.
func plainHeader(h *[blockSize]byte) bool {
	for _, f := range [...][2]int{
		{offMode, lenMode}, {offUID, lenUID}, {offGID, lenGID}, {offSize, lenSize},
		{offMtime, lenMtime}, {offChksum, lenChksum},
	} {
		if c := h[f[0]]; c&0x80 == 0 && (c < '0' || c > '7') {
			return false
		}
	}
	for _, off := range [...]int{offDevmajor, offDevminor} {
		if c := h[off]; c&0x80 != 0 || (c < '0' || c > '7') && !allZero(h[off:off+8]) {
			return false
		}
	}
	if Type(h[offType]) != TypeSymlink && h[offLinkname] != 0 {
		return false
	}
	return allZero(h[offPrefix+lenPrefix:])
}

// intern returns the C string in b, reusing *last when equal.
func (r *Reader) intern(last *string, b []byte) string {
	b = cstring(b)
	if string(b) == *last {
		return *last
	}
	*last = string(b)
	return *last
}

// Read reads the current member's data (not its padding). It returns io.EOF
// at the end of the member's data, or before the first member and after the
// last. Input ending inside the data is an error wrapping io.ErrUnexpectedEOF.
func (r *Reader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if r.remain == 0 {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	if int64(len(p)) > r.remain {
		p = p[:r.remain]
	}
	if r.r == r.w {
		if len(p) >= directRead {
			n, err := r.readSrc(p)
			r.pos += int64(n)
			r.remain -= int64(n)
			if n > 0 {
				return n, nil
			}
			return 0, r.dataErr(err)
		}
		if err := r.fill(1); err != nil {
			return 0, r.dataErr(err)
		}
	}
	n := copy(p, r.buf[r.r:r.w])
	r.consume(n)
	r.remain -= int64(n)
	return n, nil
}

// dataErr turns an error met while reading member data into the sticky error.
func (r *Reader) dataErr(err error) error {
	if errors.Is(err, io.EOF) {
		err = r.truncated()
	}
	r.err = err
	return err
}

// WriteTo writes the current member's remaining data to w (it implements
// io.WriterTo, so io.Copy uses it). If w is a *Writer, the data is read
// straight into the Writer's buffer ([Writer.ReadFrom]); otherwise it is
// written from the Reader's internal buffer without further copies.
func (r *Reader) WriteTo(w io.Writer) (int64, error) {
	if tw, ok := w.(*Writer); ok {
		return tw.ReadFrom(r)
	}
	var total int64
	for r.remain > 0 {
		if r.err != nil {
			return total, r.err
		}
		if r.r == r.w {
			if err := r.fill(1); err != nil {
				return total, r.dataErr(err)
			}
		}
		k := int64(r.w - r.r)
		if k > r.remain {
			k = r.remain
		}
		n, err := w.Write(r.buf[r.r : r.r+int(k)])
		if n < 0 || int64(n) > k {
			n = 0
			if err == nil {
				err = errors.New("tarw: writer returned invalid count")
			}
		}
		r.consume(n)
		r.remain -= int64(n)
		total += int64(n)
		if err != nil {
			return total, err
		}
		if int64(n) < k {
			return total, io.ErrShortWrite
		}
	}
	return total, r.err
}

// typePAX is the type flag of a PAX extended header, which applies to the next member.
const typePAX = 'x'

// maxPAXSize bounds a PAX extended header's data (a Writer writes path, linkpath and size
// records only: a few KiB at most).
const maxPAXSize = 64 << 10

// paxOverrides are the records of a PAX extended header this Reader applies; others are
// ignored, as POSIX allows for keywords a reader does not know.
type paxOverrides struct {
	path, linkpath string
	comment        string
	size           int64
	hasSize        bool
}

// readPAX checks the PAX header block h at off, reads and parses its records and consumes it.
func (r *Reader) readPAX(h *[blockSize]byte, off int64) (*paxOverrides, error) {
	name := string(cstring(h[offName : offName+lenName]))
	stored, res := parseNumber(h[offChksum:offChksum+lenChksum], false)
	if unsigned, signed := checksums(h); res != numOK || (stored != unsigned && stored != signed) {
		return nil, r.formatErr(name, off, nil, "PAX extended header checksum mismatch")
	}
	size, res := parseNumber(h[offSize:offSize+lenSize], false)
	if res != numOK || size <= 0 || size > maxPAXSize {
		return nil, r.formatErr(name, off, nil, "PAX extended header size %q not in 1..%d", h[offSize:offSize+lenSize], maxPAXSize)
	}
	r.consume(blockSize)
	padded := int(size+blockSize-1) &^ (blockSize - 1)
	if err := r.fill(padded); err != nil {
		if err == io.EOF {
			err = r.formatErr(name, off, io.ErrUnexpectedEOF, "input ends inside a PAX extended header")
		}
		return nil, err
	}
	data := string(r.buf[r.r : r.r+int(size)])
	r.consume(padded)
	var o paxOverrides
	for data != "" {
		lenStr, _, ok := strings.Cut(data, " ")
		n, err := strconv.Atoi(lenStr)
		if !ok || err != nil || n <= len(lenStr)+1 || n > len(data) || data[n-1] != '\n' {
			return nil, r.formatErr(name, off, nil, "malformed PAX record %.40q", data)
		}
		key, value, ok := strings.Cut(data[len(lenStr)+1:n-1], "=")
		if !ok {
			return nil, r.formatErr(name, off, nil, "PAX record without '=': %.40q", data[:n])
		}
		data = data[n:]
		switch key {
		case "path":
			o.path = value
		case "linkpath":
			o.linkpath = value
		case "comment":
			o.comment = value
		case "size":
			sz, err := strconv.ParseInt(value, 10, 64)
			if err != nil || sz < 0 {
				return nil, r.formatErr(name, off, nil, "PAX size record %q is not a size", value)
			}
			o.size, o.hasSize = sz, true
		}
	}
	return &o, nil
}

// applyPAX applies a PAX extended header's records to the member that follows it. The member
// is re-encoded by a Writer (its raw header no longer says everything).
func (r *Reader) applyPAX(m *Member, o *paxOverrides) error {
	bad := func(format string, args ...any) error {
		return r.formatErr(m.Name, m.Offset, nil, format, args...)
	}
	if o.path != "" {
		if strings.HasPrefix(o.path, "/") {
			return bad("absolute member name in a PAX header")
		}
		name := strings.TrimPrefix(o.path, "./")
		if strings.HasSuffix(name, "/") {
			if m.Type == TypeFile {
				return bad(`regular file name ends in "/"`)
			}
			name = name[:len(name)-1]
		}
		if msg := checkName(name); msg != "" {
			return bad("invalid member name in a PAX header: %s", msg)
		}
		m.Name = name
	}
	if o.linkpath != "" && m.Type == TypeSymlink {
		m.Linkname = o.linkpath
	}
	m.Comment = o.comment
	if o.hasSize {
		if o.size != 0 && m.Type != TypeFile {
			return bad("%s with non-zero size %d in a PAX header", m.Type, o.size)
		}
		m.Size = o.size
	}
	m.canonical = false
	m.orig = m.fields()
	return nil
}
