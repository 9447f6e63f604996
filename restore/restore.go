package restore

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"

	"github.com/walweave/walweave/internal/atomicfile"
	"github.com/walweave/walweave/verify"
)

// Options configures Extract.
type Options struct {
	// Dir is the data directory to create. It must not exist or be empty.
	Dir string
	// TablespaceMap relocates tablespaces, like pg_basebackup -T OLDDIR=NEWDIR: the key is
	// the tablespace's original location as recorded in the stream's postgresql.auto.conf
	// (or "pg_tblspc/<oid>"), the value its new directory (absolute; absent or empty;
	// created 0700). pg_tblspc/<oid> becomes a symbolic link to it.
	TablespaceMap map[string]string
	// NoClean keeps what was written when the restore fails (for inspection).
	NoClean bool
	// NoSync skips fsync of files and directories (faster, not crash-safe).
	NoSync bool
	// Workers is the number of goroutines writing files (default 4).
	Workers int
	// KeepGoing reads and checks the whole stream after a first problem (writing nothing
	// more) so that the report lists every problem; by default the restore stops at once.
	KeepGoing bool
	// Recovery, when set, writes standby.signal or recovery.signal and recovery settings.
	Recovery *RecoveryOptions
	// Verify configures the checks (checksum algorithm, ignored paths, ...).
	Verify verify.Options
	// Owner, when set, is given every file, directory and symbolic link the restore writes,
	// the data directory and tablespace directories included (chown, which needs root), as
	// tar -x run as root does: PostgreSQL refuses to start on a data directory it does not
	// own. Nil leaves them to the user running the restore. See StreamOwner.
	Owner *Owner
	// Logger receives progress and decisions; nil logs nothing.
	Logger *slog.Logger
}

var (
	// ErrNotEmpty is returned when the target directory (or a tablespace's new directory)
	// exists and is not empty.
	ErrNotEmpty = errors.New("restore: directory exists and is not empty")
	// errStop ends the scan at the first problem.
	errStop = errors.New("restore: stopped at the first problem")
)

// Owner is a numeric user and group.
type Owner struct{ UID, GID int }

var oidRE = regexp.MustCompile(`^[0-9]+$`)

type tsTarget struct {
	dir     string
	created bool
}

type extractor struct {
	opts Options
	log  *slog.Logger
	chk  *verify.Checker
	pool *pool

	root        string
	rootCreated bool
	dirs        map[string]bool // directories known to be real directories we may write in
	dirList     []string

	mapByOID  map[string]string // "pg_tblspc/<oid>" keys
	mapByLoc  map[string]string // location keys (cleaned)
	targets   map[string]*tsTarget
	tsSeen    map[string]bool   // oids with members in the stream
	tsLoc     map[string]string // oid -> original location (postgresql.auto.conf)
	inPlace   map[string]bool   // oids with files written under pg_tblspc/<oid>
	resolved  map[string]string // oid -> new directory, decided when its first member came
	autoConf  []byte
	autoMode  os.FileMode
	haveAuto  bool
	group     bool
	stopped   bool
	cleanOnce sync.Once

	// For Chain: record is told every member written (stream names), and deferFinish leaves
	// the relocation, postgresql.auto.conf and signal files to the end of the chain.
	record      func(name string, dir bool)
	deferFinish bool
}

// Extract reads a walweave backup stream from r and writes it into opts.Dir, checking it on
// the way with verify's checker. It returns the report; the error is non-nil when the
// restore failed (a problem in the stream, wrapping verify.ErrProblems, or an I/O error),
// in which case what was written has been removed unless opts.NoClean.
func Extract(ctx context.Context, r io.Reader, opts Options) (*verify.Report, error) {
	x, err := prepare(opts)
	if err != nil {
		return nil, err
	}
	rep, err := x.run(ctx, r)
	if err != nil {
		x.log.Error("restore failed", "dir", x.root, "err", err)
		x.cleanup()
		return rep, err
	}
	x.log.Info("restore complete", "dir", x.root, "files", rep.Files, "bytes", rep.Bytes)
	return rep, nil
}

func prepare(opts Options) (*extractor, error) {
	x := &extractor{opts: opts, log: opts.Logger, dirs: map[string]bool{},
		mapByOID: map[string]string{}, mapByLoc: map[string]string{}, targets: map[string]*tsTarget{},
		tsSeen: map[string]bool{}, tsLoc: map[string]string{}, inPlace: map[string]bool{}, resolved: map[string]string{},
		autoMode: 0o600}
	if x.log == nil {
		x.log = slog.New(slog.DiscardHandler)
	}
	if opts.Dir == "" {
		return nil, errors.New("restore: no target directory")
	}
	if opts.Recovery != nil {
		if err := opts.Recovery.validate(); err != nil {
			return nil, err
		}
	}
	chk, err := verify.NewChecker(opts.Verify)
	if err != nil {
		return nil, err
	}
	x.chk = chk
	root, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	x.root = root
	// Check everything before creating anything.
	rootEmpty, rootExists, err := emptyDir(root)
	if err != nil {
		return nil, err
	}
	if rootExists && !rootEmpty {
		return nil, fmt.Errorf("%w: %s", ErrNotEmpty, root)
	}
	type newDir struct{ old, dir string }
	var news []newDir
	seenNew := map[string]string{}
	for old, nd := range opts.TablespaceMap {
		if old == "" || nd == "" {
			return nil, fmt.Errorf("restore: invalid tablespace mapping %q=%q", old, nd)
		}
		abs, err := filepath.Abs(nd)
		if err != nil {
			return nil, fmt.Errorf("restore: %w", err)
		}
		if prev, ok := seenNew[abs]; ok {
			return nil, fmt.Errorf("restore: tablespaces %q and %q are both mapped to %s", prev, old, abs)
		}
		seenNew[abs] = old
		if abs == root || strings.HasPrefix(abs, root+string(filepath.Separator)) || strings.HasPrefix(root, abs+string(filepath.Separator)) {
			return nil, fmt.Errorf("restore: tablespace directory %s overlaps the data directory %s", abs, root)
		}
		empty, exists, err := emptyDir(abs)
		if err != nil {
			return nil, err
		}
		if exists && !empty {
			return nil, fmt.Errorf("%w: tablespace directory %s", ErrNotEmpty, abs)
		}
		rel := filepath.ToSlash(filepath.Clean(old))
		if oid, ok := strings.CutPrefix(rel, "pg_tblspc/"); ok && oidRE.MatchString(oid) {
			x.mapByOID[oid] = abs
		} else if filepath.IsAbs(old) {
			x.mapByLoc[filepath.Clean(old)] = abs
		} else {
			return nil, fmt.Errorf("restore: tablespace mapping %q: the old directory must be an absolute path or pg_tblspc/<oid>", old)
		}
		news = append(news, newDir{old, abs})
	}
	if rootExists {
		x.dirs[root] = true
	} else {
		if err := os.MkdirAll(root, 0o700); err != nil {
			return nil, fmt.Errorf("restore: %w", err)
		}
		x.rootCreated = true
		x.dirs[root] = true
	}
	x.dirList = append(x.dirList, root)
	for _, n := range news {
		t := &tsTarget{dir: n.dir}
		if _, exists, _ := emptyDir(n.dir); !exists {
			if err := os.MkdirAll(n.dir, 0o700); err != nil {
				x.cleanup()
				return nil, fmt.Errorf("restore: %w", err)
			}
			t.created = true
		}
		x.targets[n.dir] = t
		x.dirs[n.dir] = true
		x.dirList = append(x.dirList, n.dir)
	}
	workers := opts.Workers
	if workers <= 0 {
		workers = 4
	}
	x.pool = newPool(workers, !opts.NoSync)
	return x, nil
}

// emptyDir reports whether path is an empty directory, and whether it exists.
func emptyDir(path string) (empty, exists bool, err error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, false, nil
	}
	if err != nil {
		return false, false, fmt.Errorf("restore: %w", err)
	}
	if !fi.IsDir() {
		return false, true, fmt.Errorf("restore: %s exists and is not a directory", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return false, true, fmt.Errorf("restore: %w", err)
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	if err != nil && err != io.EOF {
		return false, true, fmt.Errorf("restore: %w", err)
	}
	return len(names) == 0, true, nil
}

func (x *extractor) run(ctx context.Context, r io.Reader) (*verify.Report, error) {
	x.log.Info("restore started", "dir", x.root, "tablespace_maps", len(x.opts.TablespaceMap))
	rep, err := x.chk.Scan(ctx, r, x.member)
	perr := x.pool.wait()
	switch {
	case errors.Is(err, errStop):
		err = rep.Err()
	case err == nil:
		err = perr
	}
	if err != nil {
		return rep, err
	}
	if !rep.OK() {
		return rep, rep.Err()
	}
	// Checksums the stream could not be checked against (a SHA manifest): read the files back.
	for _, mf := range x.chk.Unverified() {
		f, err := os.Open(x.diskPath(mf.Path))
		if err != nil {
			rep.AddProblem(mf.Path, "cannot be read back for its checksum: "+err.Error())
			continue
		}
		err = x.chk.RecheckFile(mf.Path, f)
		f.Close()
		if err != nil {
			return rep, fmt.Errorf("restore: reading back %s: %w", mf.Path, err)
		}
	}
	if !rep.OK() {
		return rep, rep.Err()
	}
	if x.deferFinish {
		return rep, nil
	}
	if err := x.finish(); err != nil {
		return rep, err
	}
	return rep, nil
}

// resolve returns the new directory of a tablespace, if it is mapped.
func (x *extractor) resolve(oid string) (string, bool) {
	if d, ok := x.mapByOID[oid]; ok {
		return d, true
	}
	if loc, ok := x.tsLoc[oid]; ok {
		if d, ok := x.mapByLoc[loc]; ok {
			return d, true
		}
	}
	return "", false
}

// target returns the base directory and relative path a member goes to, and the oid of the
// tablespace root directory when the member is one (pg_tblspc/<oid> itself).
func (x *extractor) target(name string) (base, rel, rootOID string) {
	if rest, ok := strings.CutPrefix(name, "pg_tblspc/"); ok {
		oid, sub, _ := strings.Cut(rest, "/")
		if oidRE.MatchString(oid) {
			x.tsSeen[oid] = true
			d, ok := x.resolved[oid]
			if !ok && !x.inPlace[oid] {
				if d, ok = x.resolve(oid); ok {
					x.resolved[oid] = d
				}
			}
			if ok && !x.inPlace[oid] {
				if sub == "" {
					return d, "", oid
				}
				return d, sub, ""
			}
			if sub != "" {
				x.inPlace[oid] = true
			}
		}
	}
	return x.root, name, ""
}

// diskPath is where a member was written (before tablespaces are linked).
func (x *extractor) diskPath(name string) string {
	base, rel, _ := x.target(name)
	return filepath.Join(base, filepath.FromSlash(rel))
}

func (x *extractor) dirPerm(mode int64) os.FileMode {
	return os.FileMode(mode)&0o750 | 0o700
}

func (x *extractor) filePerm(mode int64) os.FileMode {
	return os.FileMode(mode)&0o640 | 0o600
}

func (x *extractor) implicitDirPerm() os.FileMode {
	if x.group {
		return 0o750
	}
	return 0o700
}

// member writes one member (the checker has already refused unsafe ones).
func (x *extractor) member(name string, h *tar.Header, body io.Reader) error {
	if err := x.pool.Err(); err != nil {
		return err
	}
	if x.stopped || x.chk.ProblemCount() > 0 {
		if !x.opts.KeepGoing {
			return errStop
		}
		x.stopped = true
		return nil
	}
	base, rel, rootOID := x.target(name)
	if x.record != nil && (h.Typeflag == tar.TypeDir || h.Typeflag == tar.TypeReg) {
		x.record(name, h.Typeflag == tar.TypeDir)
	}
	switch h.Typeflag {
	case tar.TypeDir:
		if rootOID != "" {
			return nil // becomes a symbolic link to the new directory at the end
		}
		return x.mkdirAll(base, rel, x.dirPerm(h.Mode), true)
	case tar.TypeReg:
	default:
		return nil
	}
	if name == "backup_label" {
		var err error
		if body, err = refuseIncremental(body, h.Size); err != nil {
			return err
		}
	}
	if name == "PG_VERSION" && h.Mode&0o040 != 0 {
		x.group = true
	}
	if name == "postgresql.auto.conf" {
		if h.Size > 16<<20 {
			return fmt.Errorf("restore: postgresql.auto.conf is %d bytes, more than 16 MiB", h.Size)
		}
		b, err := io.ReadAll(body)
		if err != nil {
			return err
		}
		x.autoConf, x.haveAuto, x.autoMode = b, true, x.filePerm(h.Mode)
		for oid, loc := range tablespaceLocations(b) {
			x.tsLoc[oid] = loc
		}
		return nil
	}
	p, err := x.filePath(name, base, rel)
	if err != nil {
		return err
	}
	perm := x.filePerm(h.Mode)
	if h.Size <= smallFile {
		buf := x.pool.buffer()
		if buf == nil {
			return x.pool.Err()
		}
		n, err := io.ReadFull(body, buf[:h.Size])
		if err != nil {
			x.pool.bufs <- buf
			return fmt.Errorf("restore: reading %s: %w", name, err)
		}
		return x.pool.submit(job{path: p, perm: perm, data: buf[:n], buf: buf})
	}
	f, err := createFile(p, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(struct{ io.Writer }{f}, body); err != nil {
		f.Close()
		return fmt.Errorf("restore: %s: %w", p, err)
	}
	return x.pool.submit(job{f: f})
}

func within(base, p string) bool {
	return p == base || strings.HasPrefix(p, base+string(filepath.Separator))
}

// mkdirAll makes rel's directories under base, refusing to go through anything that is not
// a real directory (a symbolic link in particular).
func (x *extractor) mkdirAll(base, rel string, perm os.FileMode, explicit bool) error {
	if rel == "" || rel == "." {
		return nil
	}
	cur := base
	parts := strings.Split(rel, "/")
	for i, part := range parts {
		cur = filepath.Join(cur, part)
		last := i == len(parts)-1
		if x.dirs[cur] {
			if last && explicit {
				if err := os.Chmod(cur, perm); err != nil {
					return fmt.Errorf("restore: %w", err)
				}
			}
			continue
		}
		mode := x.implicitDirPerm()
		if last {
			mode = perm
		}
		fi, err := os.Lstat(cur)
		switch {
		case err == nil && fi.IsDir():
		case err == nil:
			return fmt.Errorf("restore: refusing to write through %s: not a directory", cur)
		case errors.Is(err, fs.ErrNotExist):
			if err := os.Mkdir(cur, mode); err != nil {
				return fmt.Errorf("restore: %w", err)
			}
			if mode&0o077 != 0 {
				if err := os.Chmod(cur, mode); err != nil {
					return fmt.Errorf("restore: %w", err)
				}
			}
		default:
			return fmt.Errorf("restore: %w", err)
		}
		x.dirs[cur] = true
		x.dirList = append(x.dirList, cur)
	}
	return nil
}

// finish relocates tablespaces, links them, writes postgresql.auto.conf and the signal
// files, sets the data directory's mode, and syncs the directories.
func (x *extractor) finish() error {
	// Every mapping must match a tablespace of the backup.
	oids := map[string]bool{}
	for oid := range x.tsSeen {
		oids[oid] = true
	}
	for oid := range x.tsLoc {
		oids[oid] = true
	}
	used := map[string]bool{}
	relocated := map[string]bool{}
	var sorted []string
	for oid := range oids {
		sorted = append(sorted, oid)
	}
	sort.Strings(sorted)
	for _, oid := range sorted {
		d, ok := x.resolve(oid)
		if !ok {
			continue
		}
		used[d] = true
		relocated[oid] = true
		link := filepath.Join(x.root, "pg_tblspc", oid)
		if x.inPlace[oid] {
			x.log.Info("moving tablespace", "oid", oid, "to", d)
			if err := moveContents(link, d); err != nil {
				return err
			}
		}
		if err := os.Remove(link); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("restore: %w", err)
		}
		if err := x.mkdirAll(x.root, "pg_tblspc", x.implicitDirPerm(), false); err != nil {
			return err
		}
		if err := os.Symlink(d, link); err != nil {
			return fmt.Errorf("restore: %w", err)
		}
		x.log.Info("tablespace relocated", "oid", oid, "was_at", x.tsLoc[oid], "now_at", d)
	}
	var unused []string
	for old, d := range x.opts.TablespaceMap {
		abs, _ := filepath.Abs(d)
		if !used[abs] {
			unused = append(unused, old)
		}
	}
	if len(unused) > 0 {
		sort.Strings(unused)
		var have []string
		for _, oid := range sorted {
			have = append(have, fmt.Sprintf("%s (pg_tblspc/%s)", x.tsLoc[oid], oid))
		}
		return fmt.Errorf("restore: tablespace mapping for %s matches no tablespace of the backup (it has: %s)",
			strings.Join(unused, ", "), strings.Join(have, ", "))
	}
	inPlaceLeft := false
	for oid := range x.tsSeen {
		if !relocated[oid] {
			inPlaceLeft = true
		}
	}
	var rec []string
	if x.opts.Recovery != nil {
		rec = x.opts.Recovery.settings()
	}
	if x.haveAuto || len(rec) > 0 {
		conf := rewriteAutoConf(x.autoConf, relocated, inPlaceLeft, rec)
		if err := x.writeFile("postgresql.auto.conf", conf, x.autoMode); err != nil {
			return err
		}
	}
	if rc := x.opts.Recovery; rc != nil {
		want, other := "standby.signal", "recovery.signal"
		if !rc.Standby {
			want, other = other, want
		}
		if err := os.Remove(filepath.Join(x.root, other)); err == nil {
			x.log.Info("removed the stream's signal file", "file", other)
		}
		p := filepath.Join(x.root, want)
		if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
			if err := x.writeFile(want, nil, 0o600|x.groupFileBits()); err != nil {
				return err
			}
		}
	}
	mode := os.FileMode(0o700)
	if x.group {
		mode = 0o750
	}
	if err := os.Chmod(x.root, mode); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if err := x.chown(); err != nil {
		return err
	}
	if x.opts.NoSync {
		return nil
	}
	return x.syncDirs()
}

// chown gives everything written to Options.Owner: the data directory and each tablespace
// directory, walked without following links.
func (x *extractor) chown() error {
	o := x.opts.Owner
	if o == nil {
		return nil
	}
	tops := []string{x.root}
	for d := range x.targets {
		tops = append(tops, d)
	}
	for _, top := range tops {
		err := filepath.WalkDir(top, func(p string, _ fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(p, o.UID, o.GID)
		})
		if err != nil {
			return fmt.Errorf("restore: give the files to uid %d gid %d: %w", o.UID, o.GID, err)
		}
	}
	x.log.Info("files given to their owner", "uid", o.UID, "gid", o.GID)
	return nil
}

func (x *extractor) groupFileBits() os.FileMode {
	if x.group {
		return 0o040
	}
	return 0
}

func (x *extractor) writeFile(name string, data []byte, perm os.FileMode) error {
	p := filepath.Join(x.root, name)
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("restore: %w", err)
	}
	f, err := createFile(p, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("restore: write %s: %w", p, err)
	}
	if !x.opts.NoSync {
		if err := f.Sync(); err != nil {
			f.Close()
			return fmt.Errorf("restore: fsync %s: %w", p, err)
		}
	}
	return f.Close()
}

// syncDirs fsyncs every directory written to, and the parents of the top directories.
func (x *extractor) syncDirs() error {
	set := map[string]bool{}
	for _, d := range x.dirList {
		set[d] = true
	}
	set[filepath.Dir(x.root)] = true
	set[filepath.Join(x.root, "pg_tblspc")] = true
	for d := range x.targets {
		set[filepath.Dir(d)] = true
	}
	var list []string
	for d := range set {
		list = append(list, d)
	}
	workers := max(x.opts.Workers, 4)
	ch := make(chan string)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for d := range ch {
				if err := syncDir(d); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for _, d := range list {
		ch <- d
	}
	close(ch)
	wg.Wait()
	return first
}

func syncDir(d string) error {
	if err := atomicfile.SyncDir(d); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("restore: %w", err)
	}
	return nil
}

// moveContents moves everything in dir into dst (rename, or copy across file systems),
// then removes dir.
func moveContents(dir, dst string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	for _, e := range entries {
		from, to := filepath.Join(dir, e.Name()), filepath.Join(dst, e.Name())
		if err := os.Rename(from, to); err != nil {
			if !errors.Is(err, syscall.EXDEV) {
				return fmt.Errorf("restore: %w", err)
			}
			if err := copyTree(from, to); err != nil {
				return err
			}
			if err := os.RemoveAll(from); err != nil {
				return fmt.Errorf("restore: %w", err)
			}
		}
	}
	return os.Remove(dir)
}

func copyTree(from, to string) error {
	return filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		t := filepath.Join(to, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.Mkdir(t, info.Mode().Perm())
		case d.Type().IsRegular():
			src, err := os.Open(p)
			if err != nil {
				return err
			}
			defer src.Close()
			f, err := createFile(t, info.Mode().Perm())
			if err != nil {
				return err
			}
			if _, err := io.Copy(f, src); err != nil {
				f.Close()
				return err
			}
			if err := f.Sync(); err != nil {
				f.Close()
				return err
			}
			return f.Close()
		default:
			return fmt.Errorf("restore: unexpected %s in a tablespace", p)
		}
	})
}

// cleanup removes what the restore wrote, unless NoClean.
func (x *extractor) cleanup() {
	x.cleanOnce.Do(func() {
		if x.pool != nil {
			_ = x.pool.wait()
		}
		if x.opts.NoClean {
			x.log.Warn("keeping the failed restore's files (NoClean)", "dir", x.root)
			return
		}
		for _, t := range x.targets {
			if t.created {
				_ = os.RemoveAll(t.dir)
			} else {
				removeContents(t.dir)
			}
		}
		if x.rootCreated {
			_ = os.RemoveAll(x.root)
		} else if x.root != "" {
			removeContents(x.root)
		}
	})
}

func removeContents(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		_ = os.RemoveAll(filepath.Join(dir, e.Name()))
	}
}
