package verify

import (
	"archive/tar"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"log/slog"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/walweave/walweave/pgformat"
)

// DefaultMaxProblems is the number of problems a Report keeps when Options.MaxProblems is 0.
const DefaultMaxProblems = 1000

var (
	// ErrUnsafe is returned (wrapped) by Checker.Begin for a member that must not be
	// written to disk: an absolute name, "..", a duplicate, a member below a regular file, a
	// symbolic link or any type other than a regular file or a directory.
	ErrUnsafe = errors.New("unsafe tar member")
	// ErrProblems is wrapped by Report.Err when the stream has problems.
	ErrProblems = errors.New("the backup stream has problems")
)

// IgnoredPaths are the paths pg_verifybackup always ignores (a path ignores everything
// below it too); they are neither required by nor compared with the manifest.
var IgnoredPaths = []string{"backup_manifest", "pg_wal", "postgresql.auto.conf", "recovery.signal", "standby.signal"}

// Options configures a check. The zero value computes CRC32C checksums (the server's
// default) and checks everything.
type Options struct {
	// Algorithm is a checksum algorithm to compute for every file as it streams past, in
	// addition to CRC32C (which is always computed, it is nearly free): SHA224, SHA256,
	// SHA384 or SHA512. The manifest, which says which algorithm the server used, comes
	// last, so a SHA checksum can only be compared if it was computed: set this to the
	// algorithm the backup was taken with. When the stream is a seekable file, Stream
	// reads it a second time for files whose algorithm was not computed; a restore
	// re-reads the files it wrote. Otherwise those files are counted in
	// Report.ChecksumsNotVerified and the report carries a warning.
	Algorithm string
	// SkipChecksums compares sizes only (pg_verifybackup -s).
	SkipChecksums bool
	// SkipWAL leaves the WAL unchecked (pg_verifybackup -n).
	SkipWAL bool
	// Ignore lists more paths (relative to the data directory) to leave out of the
	// comparison with the manifest, like pg_verifybackup -i.
	Ignore []string
	// MaxProblems caps Report.Problems (DefaultMaxProblems when 0).
	MaxProblems int
	// Logger receives a debug line per member, a warning per problem and an info summary.
	// Nil logs nothing.
	Logger *slog.Logger
}

// Member kinds.
const (
	kindOther = iota
	kindFile
	kindWAL
)

// Special members whose content is held (small, capped).
const (
	spNone = iota
	spLabel
	spManifest
	spControl
	spVersion
	spHistory
)

var specialCap = map[int]int{spLabel: 64 << 10, spManifest: pgformat.MaxManifestSize, spControl: 512, spVersion: 64, spHistory: 1 << 20}

type fileState struct {
	size    int64
	crc     uint32
	sum     []byte
	matched bool
}

type member struct {
	name      string
	typ       byte
	size      int64
	n         int64
	kind      int
	fs        *fileState
	crc       uint32
	h         hash.Hash
	special   int
	histTLI   uint32
	buf       []byte
	overflow  bool
	truncated bool
	skipped   bool // refused by Begin: content not checked
	inc       *incMember
}

type backupLabel struct {
	start     pgformat.LSN
	startFile string
	ckpt      pgformat.LSN
	tli       uint32
	hasTLI    bool
}

// Checker checks a stream one member at a time: Begin with each tar header, Write with the
// member's content, End, and Finish once the archive has ended (after EndOfArchive, or
// Abort when it could not be read to its end). Scan does all of that from an io.Reader. A
// Checker is not safe for concurrent use.
type Checker struct {
	mainSeen bool // a member of the main data directory was seen
	opts     Options
	log      *slog.Logger
	start    time.Time
	rep      Report
	ignore   []string
	shaName  string
	shaNew   func() hash.Hash

	names   map[string]byte // 'f' regular file, 'd' directory
	parents map[string]struct{}
	files   map[string]*fileState
	order   []string

	cur          *member
	manifestSeen bool
	manifest     *pgformat.Manifest
	manifestErr  error
	label        *backupLabel
	labelSeen    bool
	origin       *pgformat.BackupOrigin // backup_label's walweave comment, if it has one
	labelLate    string                 // the main directory's first member when it was not backup_label
	controlID    uint64
	controlSeen  bool
	controlHead  []byte
	incs         []*incMember
	wal          *walState
	trailer      bool
	aborted      bool
	finished     bool
	unverified   map[string]pgformat.ManifestFile
	tailConf     bool // the recovery tail's postgresql.auto.conf was seen
}

// NewChecker returns a Checker. It fails only on an unknown Options.Algorithm.
func NewChecker(opts Options) (*Checker, error) {
	c := &Checker{
		opts:       opts,
		log:        opts.Logger,
		start:      time.Now(),
		names:      map[string]byte{},
		parents:    map[string]struct{}{},
		files:      map[string]*fileState{},
		wal:        newWALState(),
		unverified: map[string]pgformat.ManifestFile{},
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.rep.maxProblems = opts.MaxProblems
	alg := strings.ToUpper(strings.ReplaceAll(opts.Algorithm, "-", ""))
	switch alg {
	case "", pgformat.ChecksumCRC32C:
	case pgformat.ChecksumNone:
		c.opts.SkipChecksums = true
	case pgformat.ChecksumSHA224, pgformat.ChecksumSHA256, pgformat.ChecksumSHA384, pgformat.ChecksumSHA512:
		c.shaName, c.shaNew = alg, hashFor(alg)
	default:
		return nil, fmt.Errorf("verify: unknown checksum algorithm %q (want CRC32C, SHA224, SHA256, SHA384, SHA512 or NONE)", opts.Algorithm)
	}
	c.ignore = append(append([]string(nil), IgnoredPaths...), opts.Ignore...)
	for i, p := range c.ignore {
		c.ignore[i] = strings.Trim(path.Clean("/"+p), "/")
	}
	return c, nil
}

// hashFor returns a constructor for a SHA-2 manifest algorithm (nil for others).
func hashFor(alg string) func() hash.Hash {
	if alg == pgformat.ChecksumNone || alg == pgformat.ChecksumCRC32C {
		return nil
	}
	if _, err := pgformat.NewChecksum(alg); err != nil {
		return nil
	}
	return func() hash.Hash { h, _ := pgformat.NewChecksum(alg); return h }
}

// crcHex is the manifest form of a CRC-32C (pgformat.CRC32CHex).
func crcHex(crc uint32) string { return pgformat.CRC32CHex(crc) }

func (c *Checker) problem(path, reason string) {
	c.rep.AddProblem(path, reason)
	c.log.Warn("backup stream problem", "path", path, "problem", reason)
}

func (c *Checker) problemCount() int { return len(c.rep.Problems) + c.rep.ProblemsOmitted }

// ProblemCount returns the number of problems found so far.
func (c *Checker) ProblemCount() int { return c.problemCount() }

// Manifest returns the parsed backup_manifest once it has been read (nil before, or when
// it could not be parsed).
func (c *Checker) Manifest() *pgformat.Manifest { return c.manifest }

func (c *Checker) ignored(p string) bool {
	for _, ig := range c.ignore {
		if p == ig || strings.HasPrefix(p, ig+"/") {
			return true
		}
	}
	return false
}

// CleanName returns the name a tar member stands for (without a leading "./" or a
// directory's trailing "/") and, when the name is not a safe relative path, why.
func CleanName(name string, typ byte) (string, string) {
	n := strings.TrimPrefix(name, "./")
	n = strings.TrimSuffix(n, "/")
	switch {
	case n == "" || n == ".":
		return n, "empty member name"
	case strings.HasPrefix(n, "/"):
		return n, "absolute member name"
	case strings.ContainsRune(n, 0):
		return n, "member name contains a NUL byte"
	}
	for _, part := range strings.Split(n, "/") {
		switch part {
		case "..":
			return n, `member name contains ".."`
		case "", ".":
			return n, "member name is not a clean relative path"
		}
	}
	if strings.HasSuffix(name, "/") && typ == tar.TypeReg {
		return n, "regular file with a directory name (trailing /)"
	}
	return n, ""
}

// Begin starts a member. It returns an error wrapping ErrUnsafe when the member must not
// be extracted (the problem is recorded in the report either way); its content must still
// be passed to Write so that the stream is checked to its end.
func (c *Checker) Begin(h *tar.Header) error {
	if c.cur != nil {
		c.End()
	}
	c.rep.Members++
	m := &member{typ: h.Typeflag, size: h.Size, skipped: true}
	c.cur = m
	defer func() {
		if m.kind != kindOther || h.Typeflag == tar.TypeDir {
			m.skipped = false
		}
	}()
	name, why := CleanName(h.Name, h.Typeflag)
	m.name = name
	c.log.Debug("member", "name", h.Name, "type", string(rune(h.Typeflag)), "size", h.Size)
	if why != "" {
		c.problem(h.Name, "unsafe member: "+why)
		return fmt.Errorf("%w %q: %s", ErrUnsafe, h.Name, why)
	}
	switch h.Typeflag {
	case tar.TypeReg, tar.TypeDir:
	case tar.TypeSymlink:
		c.problem(name, fmt.Sprintf("symbolic link member (to %q): a backup stream holds only regular files and directories", h.Linkname))
		return fmt.Errorf("%w %q: symbolic link", ErrUnsafe, h.Name)
	case tar.TypeLink:
		c.problem(name, fmt.Sprintf("hard link member (to %q): a backup stream holds only regular files and directories", h.Linkname))
		return fmt.Errorf("%w %q: hard link", ErrUnsafe, h.Name)
	default:
		c.problem(name, fmt.Sprintf("tar member of type %q: a backup stream holds only regular files and directories", h.Typeflag))
		return fmt.Errorf("%w %q: type %q", ErrUnsafe, h.Name, h.Typeflag)
	}
	for k := range h.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			c.problem(name, "sparse file member: a backup stream holds only plain regular files")
			return fmt.Errorf("%w %q: sparse file", ErrUnsafe, h.Name)
		}
	}
	if h.Size < 0 || (h.Typeflag == tar.TypeDir && h.Size != 0) {
		c.problem(name, fmt.Sprintf("invalid size %d", h.Size))
		return fmt.Errorf("%w %q: invalid size", ErrUnsafe, h.Name)
	}
	kind := byte('f')
	if h.Typeflag == tar.TypeDir {
		kind = 'd'
	}
	// The recovery tail (mux.Session.AppendRecoveryConf, a fleet's restore point) writes
	// postgresql.auto.conf a second time, once, after the data (pg_control) and the WAL: the
	// later member replaces the earlier.
	prev, dup := c.names[name]
	if dup && name == "postgresql.auto.conf" && prev == 'f' && kind == 'f' && c.controlSeen && !c.tailConf {
		c.tailConf, dup = true, false
	}
	if dup {
		what := "file"
		if prev == 'd' {
			what = "directory"
		}
		c.problem(name, "duplicate member (already seen as a "+what+")")
		return fmt.Errorf("%w %q: duplicate", ErrUnsafe, h.Name)
	}
	for p := path.Dir(name); p != "."; p = path.Dir(p) {
		if c.names[p] == 'f' {
			c.problem(name, fmt.Sprintf("member below the regular file %q", p))
			return fmt.Errorf("%w %q: below a file", ErrUnsafe, h.Name)
		}
	}
	if _, isParent := c.parents[name]; isParent && kind == 'f' {
		c.problem(name, "regular file where earlier members have a directory")
		return fmt.Errorf("%w %q: file over a directory", ErrUnsafe, h.Name)
	}
	c.names[name] = kind
	for p := path.Dir(name); p != "."; p = path.Dir(p) {
		if _, ok := c.parents[p]; ok {
			break
		}
		c.parents[p] = struct{}{}
	}
	// backup_label leads the main directory's members. The server sends the tablespace
	// archives before base.tar, so re-rooted tablespace members (and WAL segments woven in
	// between them) may come first. A source that learns backup_label's content only when
	// the backup stops (files read over SQL, --jobs) sends it after global/pg_control
	// instead, as the last data member.
	if !c.mainSeen && !strings.HasPrefix(name, "pg_tblspc/") && !strings.HasPrefix(name, "pg_wal/") {
		c.mainSeen = true
		if name != "backup_label" {
			c.labelLate = name
		}
	}
	if name == "backup_label" && c.labelLate != "" && !c.controlSeen {
		c.problem(c.labelLate, "the first member is not backup_label, and backup_label does not come after global/pg_control either (the stream contract puts backup_label first, or last after global/pg_control)")
	}
	if c.manifestSeen {
		c.problem(name, "member after backup_manifest (the manifest must be the last member)")
	}
	if kind == 'd' {
		c.rep.Dirs++
		return nil
	}
	c.rep.Files++
	c.rep.Bytes += h.Size
	m.kind = kindFile
	if rest, ok := strings.CutPrefix(name, "pg_wal/"); ok {
		switch {
		case !strings.Contains(rest, "/"):
			if _, _, _, isSeg := pgformat.ParseWALFileName(rest); isSeg {
				m.kind = kindWAL
				if !c.opts.SkipWAL {
					if msg := c.wal.begin(rest, h.Size); msg != "" {
						c.problem(name, msg)
					}
				} else {
					c.wal.count++
					c.wal.bytes += h.Size
				}
				return nil
			}
			if tli, isHist := pgformat.ParseHistoryFileName(rest); isHist {
				m.special, m.histTLI = spHistory, tli
			} else if strings.HasSuffix(rest, ".partial") {
				c.problem(name, "partial WAL segment (the stream contract has full segments only)")
			} else {
				c.problem(name, "unexpected file in pg_wal")
			}
		case strings.HasPrefix(rest, "archive_status/") && strings.Count(rest, "/") == 1 &&
			(strings.HasSuffix(rest, ".done") || strings.HasSuffix(rest, ".ready")):
		case strings.HasPrefix(rest, "summaries/"):
		default:
			c.problem(name, "unexpected file in pg_wal")
		}
	}
	if rel, ok := pgformat.IsIncrementalName(name); ok {
		m.inc = &incMember{name: name, rel: rel, size: h.Size}
	}
	switch name {
	case "backup_label":
		m.special = spLabel
		c.labelSeen = true
		if o, ok := pgformat.ParseBackupOrigin(h.PAXRecords["comment"]); ok {
			c.origin = &o
		}
	case "backup_manifest":
		m.special = spManifest
		c.manifestSeen = true
		if h.Size > pgformat.MaxManifestSize {
			m.overflow = true
		}
	case "global/pg_control":
		m.special = spControl
	case "PG_VERSION":
		m.special = spVersion
	}
	fs := &fileState{}
	c.files[name] = fs
	c.order = append(c.order, name)
	m.fs = fs
	if !c.opts.SkipChecksums && c.shaNew != nil {
		m.h = c.shaNew()
	}
	return nil
}

// Write passes member content to the checker; it never fails.
func (c *Checker) Write(p []byte) (int, error) {
	m := c.cur
	if m == nil || len(p) == 0 {
		return len(p), nil
	}
	m.n += int64(len(p))
	if m.fs != nil && !c.opts.SkipChecksums {
		m.crc = crc32.Update(m.crc, pgformat.Castagnoli, p)
		if m.h != nil {
			m.h.Write(p)
		}
	}
	if m.special == spControl {
		if room := specialCap[spControl] - len(m.buf); room > 0 {
			m.buf = append(m.buf, p[:min(room, len(p))]...) // the head is enough
		}
	} else if m.special != spNone && !m.overflow {
		if len(m.buf)+len(p) > specialCap[m.special] {
			m.overflow, m.buf = true, nil
		} else {
			m.buf = append(m.buf, p...)
		}
	}
	if m.inc != nil {
		m.inc.write(p)
	}
	if m.kind == kindWAL && !c.opts.SkipWAL {
		for _, msg := range c.wal.write(p) {
			c.problem(m.name, msg)
		}
	}
	return len(p), nil
}

// End finishes the current member.
func (c *Checker) End() {
	m := c.cur
	if m == nil {
		return
	}
	c.cur = nil
	if m.n != m.size && !m.truncated && !m.skipped {
		c.problem(m.name, fmt.Sprintf("member has %d bytes of content, its header says %d", m.n, m.size))
	}
	if m.fs != nil {
		m.fs.size = m.n
		m.fs.crc = m.crc
		if m.h != nil {
			m.fs.sum = m.h.Sum(nil)
		}
	}
	if m.kind == kindWAL && !c.opts.SkipWAL {
		c.wal.end()
	}
	if m.truncated {
		return
	}
	if m.inc != nil {
		m.inc.n = m.n
		c.incs = append(c.incs, m.inc)
	}
	switch m.special {
	case spLabel:
		c.parseLabel(m)
	case spManifest:
		if m.overflow {
			c.problem(m.name, fmt.Sprintf("larger than %d bytes; not read", pgformat.MaxManifestSize))
			c.manifestErr = errors.New("too large")
			return
		}
		c.manifest, c.manifestErr = pgformat.ParseManifest(m.buf)
		if c.manifestErr != nil {
			c.problem(m.name, c.manifestErr.Error())
		}
	case spControl:
		if len(m.buf) >= 8 {
			c.controlID, c.controlSeen = binary.LittleEndian.Uint64(m.buf[:8]), true
			c.controlHead = m.buf
		}
	case spVersion:
		if v, err := strconv.Atoi(strings.TrimSpace(string(m.buf))); err == nil {
			c.rep.PGVersion = v
		} else {
			c.problem(m.name, fmt.Sprintf("unreadable version %q", m.buf))
		}
	case spHistory:
		if m.overflow {
			c.problem(m.name, "timeline history file larger than 1 MiB")
			return
		}
		c.wal.history[m.histTLI] = m.buf
	}
}

func (c *Checker) parseLabel(m *member) {
	if m.overflow {
		c.problem(m.name, "larger than 64 KiB; not a backup_label")
		return
	}
	pl, err := pgformat.ParseBackupLabel(m.buf)
	if errors.Is(err, pgformat.ErrNotBackupLabel) {
		c.problem(m.name, "no START WAL LOCATION: not a backup_label")
		return
	}
	if err != nil {
		c.problem(m.name, strings.TrimPrefix(err.Error(), "backup_label: "))
		return
	}
	if pl.Incremental() {
		c.rep.Incremental = true
		c.rep.IncrementalFromLSN, c.rep.IncrementalFromTLI = pl.IncrementalFromLSN, pl.IncrementalFromTLI
	}
	l := &backupLabel{start: pl.StartLSN, startFile: pl.StartSegment, ckpt: pl.CheckpointLSN, tli: pl.StartTimeline, hasTLI: pl.StartTimeline != 0}
	if !l.hasTLI {
		c.problem(m.name, "no START TIMELINE")
	}
	c.label = l
	if c.wal.labelStart == 0 && l.hasTLI {
		c.wal.labelStart, c.wal.labelTLI = l.start, l.tli
	}
}

// EndOfArchive records that the tar end-of-archive marker was read. Without it, Finish
// reports the stream as truncated.
func (c *Checker) EndOfArchive() { c.trailer = true }

// Abort records that the archive could not be read to its end, and why (a truncation, a
// malformed header). The reason becomes a problem.
func (c *Checker) Abort(reason string) {
	if c.cur != nil {
		c.cur.truncated = true
	}
	c.aborted = true
	c.problem("", reason)
}

// Finish runs the end-of-stream checks (manifest, files, backup_label, WAL) and returns the
// report. Calling it again returns the same report.
func (c *Checker) Finish() *Report {
	if c.finished {
		return &c.rep
	}
	c.End()
	c.finished = true
	if !c.trailer && !c.aborted {
		c.problem("", "the stream ends without the tar end-of-archive marker: it is truncated or incomplete")
	}
	man := c.manifest
	trusted := man != nil && c.manifestErr == nil
	switch {
	case !c.manifestSeen:
		c.problem("backup_manifest", "missing: the backup is incomplete (walweave writes the manifest last, only once the backup has succeeded)")
	case man != nil && !trusted:
		c.problem("backup_manifest", "the manifest is not trusted: files and WAL were not compared with it")
	}
	if trusted {
		c.rep.ManifestVersion = man.Version
		c.compareFiles(man)
	}
	c.checkLabel(man, trusted)
	c.checkControl(man, trusted)
	c.checkIncremental()
	if !c.opts.SkipWAL && trusted {
		c.wal.finish(c, man.WALRanges)
		if c.wal.magic != 0 && c.rep.PGVersion != 0 {
			v, known := walPageMagic[c.wal.magic]
			switch {
			case known && v != c.rep.PGVersion:
				c.problem("pg_wal", fmt.Sprintf("the WAL page magic %04X is PostgreSQL %d's, but PG_VERSION says %d", c.wal.magic, v, c.rep.PGVersion))
			case !known && c.rep.PGVersion <= 18:
				c.problem("pg_wal", fmt.Sprintf("unknown WAL page magic %04X for PostgreSQL %d", c.wal.magic, c.rep.PGVersion))
			}
		}
	}
	if !c.opts.SkipWAL && !trusted && c.wal.count > 0 {
		c.rep.Warnings = append(c.rep.Warnings, "WAL segments were checked page by page only: without a manifest the WAL ranges are unknown")
	}
	if c.opts.SkipWAL {
		c.rep.Warnings = append(c.rep.Warnings, "WAL not checked")
	}
	if c.opts.SkipChecksums {
		c.rep.Warnings = append(c.rep.Warnings, "file checksums not checked (sizes only)")
	}
	c.fillReport(man, trusted)
	if c.wal.page != nil {
		pageBufs.Put(c.wal.page)
		c.wal.page = nil
	}
	c.rep.Complete = true
	c.rep.Duration = time.Since(c.start)
	c.log.Info("backup stream checked", "ok", c.rep.OK(), "problems", c.problemCount(), "files", c.rep.Files,
		"wal_segments", c.rep.WALSegments, "start_lsn", c.rep.StartLSN.String(), "end_lsn", c.rep.EndLSN.String())
	return &c.rep
}

func (c *Checker) fillReport(man *pgformat.Manifest, trusted bool) {
	r := &c.rep
	r.WALSegments = c.wal.count
	r.WALBytes = c.wal.bytes
	r.WALRecords = c.wal.records
	r.SegmentSize = c.wal.segSize
	if c.controlSeen {
		r.SystemID = c.controlID
	}
	if c.label != nil {
		r.StartLSN, r.CheckpointLSN, r.StartTimeline = c.label.start, c.label.ckpt, c.label.tli
	}
	if trusted {
		if r.StartLSN == 0 {
			r.StartLSN = man.StartLSN()
		}
		r.EndLSN = man.EndLSN()
		r.Timelines = r.Timelines[:0]
		for i := len(man.WALRanges) - 1; i >= 0; i-- {
			r.Timelines = append(r.Timelines, man.WALRanges[i].Timeline)
		}
		sort.Slice(r.Timelines, func(i, j int) bool { return r.Timelines[i] < r.Timelines[j] })
	} else if c.label != nil && c.label.hasTLI {
		r.Timelines = []uint32{c.label.tli}
	}
}

func (c *Checker) compareFiles(man *pgformat.Manifest) {
	algs := map[string]bool{}
	for _, mf := range man.Files {
		if c.ignored(mf.Path) {
			continue
		}
		fs := c.files[mf.Path]
		if fs == nil {
			if c.names[mf.Path] == 'd' {
				c.problem(mf.Path, "a file in the manifest, a directory in the stream")
			} else {
				c.problem(mf.Path, "in the manifest but not in the stream")
			}
			continue
		}
		fs.matched = true
		if fs.size != mf.Size {
			c.problem(mf.Path, fmt.Sprintf("size %d in the stream, %d in the manifest", fs.size, mf.Size))
			continue
		}
		if c.opts.SkipChecksums || mf.Algorithm == "" {
			if mf.Algorithm == "" {
				algs[pgformat.ChecksumNone] = true
			}
			continue
		}
		algs[mf.Algorithm] = true
		var got string
		switch {
		case mf.Algorithm == pgformat.ChecksumCRC32C:
			got = crcHex(fs.crc)
		case mf.Algorithm == c.shaName && fs.sum != nil:
			got = hex.EncodeToString(fs.sum)
		default:
			c.rep.ChecksumsNotVerified++
			c.unverified[mf.Path] = mf
			continue
		}
		if got != mf.Checksum {
			c.problem(mf.Path, fmt.Sprintf("%s checksum mismatch: the stream's content has %s, the manifest says %s", mf.Algorithm, got, mf.Checksum))
			continue
		}
		c.rep.ChecksumsVerified++
	}
	for _, name := range c.order {
		if fs := c.files[name]; !fs.matched && !c.ignored(name) {
			c.problem(name, "in the stream but not in the manifest")
		}
	}
	switch len(algs) {
	case 0:
	case 1:
		for a := range algs {
			c.rep.ChecksumAlgorithm = a
		}
	default:
		c.rep.ChecksumAlgorithm = "mixed"
	}
}

func (c *Checker) checkLabel(man *pgformat.Manifest, trusted bool) {
	if o := c.origin; o != nil {
		if c.controlSeen && o.SystemID != c.controlID {
			c.problem("backup_label", fmt.Sprintf("its walweave comment names the cluster with system identifier %d, global/pg_control is of %d: the stream mixes two clusters' files", o.SystemID, c.controlID))
		}
		if c.rep.PGVersion != 0 && o.Major() != c.rep.PGVersion {
			c.problem("backup_label", fmt.Sprintf("its walweave comment says PostgreSQL %d, PG_VERSION says %d: the stream mixes two versions' files", o.Major(), c.rep.PGVersion))
		}
	}
	l := c.label
	if l == nil {
		if !c.labelSeen && (!trusted || !manifestHas(man, "backup_label")) {
			c.problem("backup_label", "missing: PostgreSQL cannot restore a backup without it")
		}
		return
	}
	if !trusted || len(man.WALRanges) == 0 {
		return
	}
	oldest := man.WALRanges[len(man.WALRanges)-1]
	if l.start != oldest.Start {
		c.problem("backup_label", fmt.Sprintf("START WAL LOCATION %s differs from the manifest's WAL start %s", l.start, oldest.Start))
	}
	if l.hasTLI && l.tli != oldest.Timeline {
		c.problem("backup_label", fmt.Sprintf("START TIMELINE %d differs from the manifest's oldest timeline %d", l.tli, oldest.Timeline))
	}
	if c.wal.segSize != 0 && l.hasTLI && l.startFile != "" {
		if want := pgformat.WALFileName(l.tli, l.start, int(c.wal.segSize)); want != l.startFile {
			c.problem("backup_label", fmt.Sprintf("START WAL LOCATION %s is in segment %s, not %s", l.start, want, l.startFile))
		}
	}
	if l.ckpt != 0 && (l.ckpt < l.start || l.ckpt >= man.EndLSN()) {
		c.problem("backup_label", fmt.Sprintf("CHECKPOINT LOCATION %s is outside the backup's WAL %s..%s", l.ckpt, l.start, man.EndLSN()))
	}
}

func manifestHas(man *pgformat.Manifest, p string) bool {
	if man == nil {
		return false
	}
	for _, f := range man.Files {
		if f.Path == p {
			return true
		}
	}
	return false
}

func (c *Checker) checkControl(man *pgformat.Manifest, trusted bool) {
	if !c.controlSeen {
		return
	}
	if c.wal.sysidSeg != "" && c.wal.sysid != c.controlID {
		c.problem(c.wal.sysidSeg, fmt.Sprintf("system identifier %d differs from global/pg_control's %d (WAL of another cluster)", c.wal.sysid, c.controlID))
	}
	if trusted && man.Version >= 2 && man.SystemIdentifier != c.controlID {
		c.problem("backup_manifest", fmt.Sprintf("System-Identifier %d differs from global/pg_control's %d", man.SystemIdentifier, c.controlID))
	}
}

// Unverified lists the manifest files whose checksum Finish could not compare because their
// algorithm was not computed while the stream was read (see Options.Algorithm).
func (c *Checker) Unverified() []pgformat.ManifestFile {
	out := make([]pgformat.ManifestFile, 0, len(c.unverified))
	for _, mf := range c.unverified {
		out = append(out, mf)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// RecheckFile computes the checksum of an Unverified file from r (a second read of the
// stream, or the file a restore wrote) and records the result in the report: a verified
// checksum or a problem. It returns an error only when r fails; paths that are not
// awaiting a check are ignored.
func (c *Checker) RecheckFile(p string, r io.Reader) error {
	mf, ok := c.unverified[p]
	if !ok {
		return nil
	}
	var h hash.Hash
	var crc hash.Hash32
	if mf.Algorithm == pgformat.ChecksumCRC32C {
		crc = crc32.New(pgformat.Castagnoli)
		h = crc
	} else if nf := hashFor(mf.Algorithm); nf != nil {
		h = nf()
	} else {
		return nil
	}
	n, err := io.Copy(h, r)
	if err != nil {
		return err
	}
	delete(c.unverified, p)
	c.rep.ChecksumsNotVerified--
	if n != mf.Size {
		c.problem(p, fmt.Sprintf("has %d bytes when read again, %d in the manifest", n, mf.Size))
		return nil
	}
	got := ""
	if crc != nil {
		got = crcHex(crc.Sum32())
	} else {
		got = hex.EncodeToString(h.Sum(nil))
	}
	if got != mf.Checksum {
		c.problem(p, fmt.Sprintf("%s checksum mismatch: the content has %s, the manifest says %s", mf.Algorithm, got, mf.Checksum))
		return nil
	}
	c.rep.ChecksumsVerified++
	return nil
}
