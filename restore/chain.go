package restore

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/walweave/walweave/pgformat"
	"github.com/walweave/walweave/verify"
)

// ChainStream is one stream of a chain: a name for messages (a file name, "stdin") and the
// stream, read once from its start to its end.
type ChainStream = verify.ChainStream

// IncompleteMarker is the file Chain keeps in the data directory while it applies the
// incremental backups; it says which stream was being applied. With it, backup_label carries
// INCREMENTAL FROM lines, so PostgreSQL refuses to start ("this is an incremental backup,
// not a data directory") on a directory whose chain restore stopped midway (a crash, or an
// error with Options.NoClean). Both are put right only once the whole chain is applied.
const IncompleteMarker = "walweave_restore_incomplete"

// ChainReport is what Chain did.
type ChainReport struct {
	// Reports has one verify report per stream read, in order.
	Reports []*verify.Report
	// Patched counts INCREMENTAL files applied (blocks written into an existing file),
	// BlocksWritten their blocks, Replaced the files an incremental backup carried whole, and
	// Removed the files and directories removed because a newer backup does not have them.
	Patched, Replaced, Removed int
	BlocksWritten              int64
	// ManifestFiles is the number of files in the backup_manifest written for the result.
	ManifestFiles int
}

// Chain restores a chain of backups into opts.Dir: a full backup, then the incremental
// backups (PostgreSQL 17+, walweave backup --incremental) in the order they were taken, each
// read once, from its start to its end, as it comes (a pipe is fine: nothing is staged).
//
// The full backup is extracted as Extract does. Then, for each incremental backup, every
// member is applied as it streams past: an INCREMENTAL.<name> file patches <name> in place
// (the file is cut or extended to the truncation block length, or past it to the last block
// listed, then the listed blocks are written), a file that comes whole replaces the one on
// disk, a directory is created; once the stream has been read, the files and directories
// the stream did not have (decided from its members) are removed. Each stream is checked
// while it is read, as verify does (its manifest included). The block size and RELSEG_SIZE
// are the cluster's own, from global/pg_control.
//
// At the end the data directory holds the newest backup's files with its backup_label less
// the INCREMENTAL FROM lines, its pg_control and WAL, and a new backup_manifest describing
// the result (version 2, CRC32C; its WAL ranges are the newest backup's), so pg_verifybackup
// can check it; tablespace relocation, postgresql.auto.conf and the recovery options of opts
// apply as with Extract.
//
// Before anything is written, the head of every stream is read (up to MaxChainHead, kept in
// memory; each stream is still read once) for its backup_label, and a chain that does not
// link is refused there, with verify.CheckChain's words; the system identifiers, in
// global/pg_control near each stream's end, are compared while the chain is applied.
//
// The chain must link: a full backup first, then backups each taken from the one before it
// (INCREMENTAL FROM LSN and TLI equal to its START WAL LOCATION and TIMELINE), all of one
// cluster; an INCREMENTAL file whose relation file no earlier backup has is an error too.
// While the incremental backups are applied, the directory carries IncompleteMarker and a
// backup_label PostgreSQL refuses; a failure removes what was written (unless
// opts.NoClean, which leaves the directory in that refused state).
func Chain(ctx context.Context, streams []ChainStream, opts Options) (*ChainReport, error) {
	cr := &ChainReport{}
	if len(streams) == 0 {
		return cr, errors.New("restore: no backup to restore")
	}
	if len(streams) == 1 {
		rep, err := Extract(ctx, streams[0].R, opts)
		cr.Reports = append(cr.Reports, rep)
		return cr, err
	}
	streams = append([]ChainStream(nil), streams...)
	if err := checkChainHeads(streams, MaxChainHead); err != nil {
		return cr, fmt.Errorf("restore: %w", err)
	}
	x, err := prepare(opts)
	if err != nil {
		return cr, err
	}
	cs := &chainState{x: x, cr: cr, streams: streams, have: map[string]bool{}}
	x.record = func(name string, dir bool) { cs.have[name] = dir }
	x.deferFinish = true
	err = cs.run(ctx)
	if err != nil {
		x.log.Error("chain restore failed", "dir", x.root, "err", err)
		x.cleanup()
		return cr, err
	}
	x.log.Info("chain restore complete", "dir", x.root, "backups", len(streams), "patched", cr.Patched,
		"replaced", cr.Replaced, "removed", cr.Removed)
	return cr, nil
}

type chainState struct {
	x       *extractor
	cr      *ChainReport
	streams []ChainStream

	have    map[string]bool // stream names on disk; true for a directory
	present map[string]bool // names the stream being applied has
	labels  []*verify.Report

	ctl          pgformat.ControlFile
	label        *pgformat.BackupLabel
	labelRaw     []byte
	manifestRaw  []byte
	cur          int
	block        []byte
	mustLink     error
	linkChecked  bool
	sysidChecked bool
}

// link is what the chain check needs of a backup, in verify.CheckChain's terms.
func linkOf(l *pgformat.BackupLabel, sysid uint64) *verify.Report {
	return &verify.Report{StartLSN: verify.LSN(l.StartLSN), StartTimeline: l.StartTimeline, SystemID: sysid,
		Incremental: l.Incremental(), IncrementalFromLSN: verify.LSN(l.IncrementalFromLSN), IncrementalFromTLI: l.IncrementalFromTLI}
}

func (cs *chainState) names() []string {
	var n []string
	for _, s := range cs.streams {
		n = append(n, s.Name)
	}
	return n
}

func (cs *chainState) run(ctx context.Context) error {
	x := cs.x
	x.log.Info("restoring the full backup", "stream", cs.streams[0].Name)
	rep, err := x.run(ctx, cs.streams[0].R)
	cs.cr.Reports = append(cs.cr.Reports, rep)
	if err != nil {
		return fmt.Errorf("%s: %w", cs.streams[0].Name, err)
	}
	raw, err := os.ReadFile(filepath.Join(x.root, "backup_label"))
	if err != nil {
		return fmt.Errorf("restore: %s: %w", cs.streams[0].Name, err)
	}
	if cs.label, err = pgformat.ParseBackupLabel(raw); err != nil {
		return fmt.Errorf("restore: %s: backup_label: %w", cs.streams[0].Name, err)
	}
	cs.labelRaw = raw
	ctl, err := os.ReadFile(filepath.Join(x.root, "global", "pg_control"))
	if err != nil {
		return fmt.Errorf("restore: %s: %w", cs.streams[0].Name, err)
	}
	if cs.ctl, err = pgformat.ParseControlFile(ctl); err != nil {
		return fmt.Errorf("restore: %s: global/pg_control: %w", cs.streams[0].Name, err)
	}
	if cs.ctl.BlockSize < 1024 || cs.ctl.RelsegSize == 0 {
		return fmt.Errorf("restore: %s: global/pg_control has block size %d and RELSEG_SIZE %d", cs.streams[0].Name, cs.ctl.BlockSize, cs.ctl.RelsegSize)
	}
	cs.block = make([]byte, cs.ctl.BlockSize)
	cs.labels = append(cs.labels, linkOf(cs.label, cs.ctl.SystemIdentifier))
	for i := 1; i < len(cs.streams); i++ {
		if err := cs.apply(ctx, i); err != nil {
			return err
		}
	}
	return cs.finishChain()
}

// apply applies incremental backup i.
func (cs *chainState) apply(ctx context.Context, i int) error {
	x, s := cs.x, cs.streams[i]
	cs.cur, cs.present, cs.linkChecked, cs.sysidChecked = i, map[string]bool{}, false, false
	x.log.Info("applying an incremental backup", "stream", s.Name, "n", i+1, "of", len(cs.streams))
	msg := fmt.Sprintf("walweave restore: this directory is a chain restore that did not finish: it stopped while applying %s (backup %d of %d) on top of %s.\n"+
		"It is not a usable data directory (backup_label carries INCREMENTAL FROM lines, so PostgreSQL refuses to start on it).\n"+
		"Restore the whole chain again into an empty directory.\n", s.Name, i+1, len(cs.streams), cs.streams[i-1].Name)
	if err := cs.writeAtomic(IncompleteMarker, []byte(msg), 0o600); err != nil {
		return err
	}
	refused := *cs.label
	if !refused.Incremental() {
		refused.IncrementalFromLSN, refused.IncrementalFromTLI = refused.StartLSN, refused.StartTimeline
	}
	if err := cs.writeAtomic("backup_label", refused.Bytes(), x.filePerm(0o600)); err != nil {
		return err
	}
	vopts := x.opts.Verify
	if vopts.Algorithm == "" && strings.HasPrefix(cs.cr.Reports[i-1].ChecksumAlgorithm, "SHA") {
		// The chain's backups are taken alike: compute the previous backup's SHA algorithm
		// while this stream is read (an INCREMENTAL file cannot be read back from disk).
		vopts.Algorithm = cs.cr.Reports[i-1].ChecksumAlgorithm
	}
	chk, err := verify.NewChecker(vopts)
	if err != nil {
		return err
	}
	rep, err := chk.Scan(ctx, s.R, cs.member)
	if rep != nil {
		rep.DropIncrementalWarning()
	}
	cs.cr.Reports = append(cs.cr.Reports, rep)
	switch {
	case errors.Is(err, errStop):
		err = rep.Err()
	case err == nil && !rep.OK():
		err = rep.Err()
	}
	if err == nil && !cs.linkChecked {
		err = errors.New("restore: the stream has no backup_label")
	}
	if err == nil && cs.mustLink != nil {
		err = cs.mustLink
	}
	if err == nil && chk.ProblemCount() == 0 && rep.ChecksumsNotVerified > 0 {
		err = fmt.Errorf("restore: %d %s checksums of the incremental backup could not be verified while it was read: the backup before it uses another manifest checksum algorithm (take the backups of a chain with the same --manifest-checksums, or set the algorithm to verify)", rep.ChecksumsNotVerified, rep.ChecksumAlgorithm)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", s.Name, err)
	}
	return cs.removeAbsent()
}

// member applies one member of an incremental backup.
func (cs *chainState) member(name string, h *tar.Header, body io.Reader) error {
	x := cs.x
	if cs.mustLink != nil {
		return cs.mustLink
	}
	if err := chkStop(cs); err != nil {
		return err
	}
	// backup_label leads the main directory: the chain is checked there, before the main
	// directory is touched (tablespace members come before it).
	if !cs.linkChecked && !strings.HasPrefix(name, "pg_tblspc/") && !strings.HasPrefix(name, "pg_wal/") && name != "backup_label" {
		return fmt.Errorf("restore: %s comes before backup_label", name)
	}
	rel, incremental := pgformat.IsIncrementalName(name)
	if incremental && h.Typeflag == tar.TypeReg {
		cs.present[rel] = true
	} else {
		cs.present[name] = true
	}
	base, relPath, rootOID := x.target(name)
	switch h.Typeflag {
	case tar.TypeDir:
		cs.have[name] = true
		if rootOID != "" {
			return nil
		}
		return x.mkdirAll(base, relPath, x.dirPerm(h.Mode), true)
	case tar.TypeReg:
	default:
		return nil
	}
	switch name {
	case "backup_label":
		return cs.applyLabel(body, h.Size)
	case "postgresql.auto.conf":
		b, err := readSmall(body, h.Size, 16<<20, name)
		if err != nil {
			return err
		}
		x.autoConf, x.haveAuto, x.autoMode = b, true, x.filePerm(h.Mode)
		x.tsLoc = map[string]string{}
		for oid, loc := range tablespaceLocations(b) {
			x.tsLoc[oid] = loc
		}
		return nil
	case "backup_manifest":
		b, err := readSmall(body, h.Size, pgformat.MaxManifestSize, name)
		if err != nil {
			return err
		}
		cs.manifestRaw = b
		return nil
	case "global/pg_control":
		b, err := readSmall(body, h.Size, 1<<20, name)
		if err != nil {
			return err
		}
		ctl, err := pgformat.ParseControlFile(b)
		if err != nil {
			return fmt.Errorf("restore: global/pg_control: %w", err)
		}
		if ctl.SystemIdentifier != cs.ctl.SystemIdentifier {
			return fmt.Errorf("restore: %w: %s is a backup of another cluster (system identifier %d; %s's is %d)",
				verify.ErrChain, cs.streams[cs.cur].Name, ctl.SystemIdentifier, cs.streams[0].Name, cs.ctl.SystemIdentifier)
		}
		if ctl.BlockSize != cs.ctl.BlockSize || ctl.RelsegSize != cs.ctl.RelsegSize {
			return fmt.Errorf("restore: global/pg_control: block size %d and RELSEG_SIZE %d differ from the full backup's %d and %d", ctl.BlockSize, ctl.RelsegSize, cs.ctl.BlockSize, cs.ctl.RelsegSize)
		}
		cs.sysidChecked = true
		return cs.replace(name, h, bytes.NewReader(b))
	}
	if incremental {
		return cs.patch(name, rel, body)
	}
	return cs.replace(name, h, body)
}

func chkStop(cs *chainState) error {
	if err := cs.x.pool.Err(); err != nil {
		return err
	}
	return nil
}

func readSmall(body io.Reader, size, limit int64, name string) ([]byte, error) {
	if size > limit {
		return nil, fmt.Errorf("restore: %s is %d bytes, more than %d", name, size, limit)
	}
	b, err := io.ReadAll(body)
	if err != nil {
		return nil, fmt.Errorf("restore: reading %s: %w", name, err)
	}
	return b, nil
}

// applyLabel checks the chain links at the incremental backup's backup_label and writes it
// (with its INCREMENTAL lines: the directory stays refused until the chain is applied).
func (cs *chainState) applyLabel(body io.Reader, size int64) error {
	raw, err := readSmall(body, size, pgformat.MaxBackupLabelSize, "backup_label")
	if err != nil {
		return err
	}
	l, err := pgformat.ParseBackupLabel(raw)
	if err != nil {
		return fmt.Errorf("restore: backup_label: %w", err)
	}
	links := append(cs.labels[:cs.cur:cs.cur], linkOf(l, 0))
	if err := verify.CheckChain(cs.names()[:cs.cur+1], links); err != nil {
		cs.mustLink = fmt.Errorf("restore: %w", err)
		return cs.mustLink
	}
	cs.labels = links
	cs.linkChecked = true
	cs.label, cs.labelRaw = l, raw
	return cs.writeAtomic("backup_label", raw, cs.x.filePerm(0o600))
}

// patch applies INCREMENTAL file name to relation file rel.
func (cs *chainState) patch(name, rel string, body io.Reader) error {
	x := cs.x
	p := x.diskPath(rel)
	if dir, ok := cs.have[rel]; !ok || dir {
		return fmt.Errorf("restore: %w: %s patches %s, which no earlier backup of the chain has (a backup of the chain is missing, or the backups are out of order)", verify.ErrChain, name, rel)
	}
	blcksz := int64(cs.ctl.BlockSize)
	hdr, err := pgformat.ReadIncrementalHeaderLimit(body, int(blcksz), int(cs.ctl.RelsegSize))
	if err != nil {
		return fmt.Errorf("restore: %s: %w", name, err)
	}
	f, err := os.OpenFile(p, os.O_RDWR|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("restore: %w: %s patches %s, which is not on disk", verify.ErrChain, name, rel)
		}
		return fmt.Errorf("restore: %w", err)
	}
	blocks := int64(hdr.TruncationBlockLength)
	for _, b := range hdr.BlockNumbers {
		blocks = max(blocks, int64(b)+1)
	}
	if err := f.Truncate(blocks * blcksz); err != nil {
		f.Close()
		return fmt.Errorf("restore: %s: %w", p, err)
	}
	for _, b := range hdr.BlockNumbers {
		if _, err := io.ReadFull(body, cs.block); err != nil {
			f.Close()
			return fmt.Errorf("restore: reading %s: %w", name, err)
		}
		if _, err := f.WriteAt(cs.block, int64(b)*blcksz); err != nil {
			f.Close()
			return fmt.Errorf("restore: %s: %w", p, err)
		}
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("restore: %s: %w", p, err)
	}
	cs.cr.Patched++
	cs.cr.BlocksWritten += int64(len(hdr.BlockNumbers))
	return nil
}

// filePath makes the directories of member name (base and rel from target) and returns the
// path of its file, refusing one outside base.
func (x *extractor) filePath(name, base, rel string) (string, error) {
	dir, file := filepath.Split(filepath.FromSlash(rel))
	if err := x.mkdirAll(base, filepath.ToSlash(filepath.Clean(dir)), x.implicitDirPerm(), false); err != nil {
		return "", err
	}
	p := filepath.Join(base, filepath.Clean(dir), file)
	if !within(base, p) {
		return "", fmt.Errorf("restore: %s would be outside %s", name, base)
	}
	return p, nil
}

// replace writes a file the incremental backup carries whole.
func (cs *chainState) replace(name string, h *tar.Header, body io.Reader) error {
	x := cs.x
	base, rel, _ := x.target(name)
	p, err := x.filePath(name, base, rel)
	if err != nil {
		return err
	}
	if fi, err := os.Lstat(p); err == nil {
		if fi.IsDir() {
			return fmt.Errorf("restore: %s is a file in %s, a directory on disk", name, cs.streams[cs.cur].Name)
		}
		if err := os.Remove(p); err != nil {
			return fmt.Errorf("restore: %w", err)
		}
	}
	f, err := createFile(p, x.filePerm(h.Mode))
	if err != nil {
		return err
	}
	if _, err := io.Copy(struct{ io.Writer }{f}, body); err != nil {
		f.Close()
		return fmt.Errorf("restore: %s: %w", p, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("restore: %s: %w", p, err)
	}
	cs.have[name] = false
	cs.cr.Replaced++
	return nil
}

// removeAbsent removes what the stream just applied does not have.
func (cs *chainState) removeAbsent() error {
	x := cs.x
	keep := map[string]bool{"backup_label": true, "backup_manifest": true, IncompleteMarker: true}
	var files, dirs []string
	for name, dir := range cs.have {
		if cs.present[name] || keep[name] {
			continue
		}
		if dir {
			dirs = append(dirs, name)
		} else {
			files = append(files, name)
		}
	}
	for _, name := range files {
		p := x.diskPath(name)
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("restore: %w", err)
		}
		delete(cs.have, name)
		cs.cr.Removed++
		x.log.Debug("removed: not in the newer backup", "path", name)
	}
	// Deepest first.
	sort.Slice(dirs, func(i, j int) bool { return strings.Count(dirs[i], "/") > strings.Count(dirs[j], "/") })
	for _, name := range dirs {
		base, rel, rootOID := x.target(name)
		p := filepath.Join(base, filepath.FromSlash(rel))
		if rootOID != "" {
			removeContents(p) // a relocated tablespace's own directory stays
		} else if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("restore: %w", err)
		}
		delete(x.dirs, p)
		delete(cs.have, name)
		cs.cr.Removed++
		if oid, ok := strings.CutPrefix(name, "pg_tblspc/"); ok && !strings.Contains(oid, "/") {
			// A tablespace dropped since: forget it.
			delete(x.tsSeen, oid)
			delete(x.resolved, oid)
			delete(x.inPlace, oid)
		}
		x.log.Debug("removed: not in the newer backup", "path", name+"/")
	}
	for p := range x.dirs {
		if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
			delete(x.dirs, p)
		}
	}
	return nil
}

// finishChain writes the final backup_label, relocates tablespaces and writes
// postgresql.auto.conf and the signal files (as Extract), writes a backup_manifest for the
// result and removes the marker.
func (cs *chainState) finishChain() error {
	x := cs.x
	if err := cs.writeAtomic("backup_label", pgformat.DropIncrementalLines(cs.labelRaw), x.filePerm(0o600)); err != nil {
		return err
	}
	if err := x.finish(); err != nil {
		return err
	}
	if err := cs.writeManifest(); err != nil {
		return err
	}
	if !x.opts.NoSync {
		for _, d := range append([]string{x.root}, x.targetDirs()...) {
			if err := syncFS(d); err != nil {
				return err
			}
		}
	}
	if err := os.Remove(filepath.Join(x.root, IncompleteMarker)); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if !x.opts.NoSync {
		return syncDir(x.root)
	}
	return nil
}

func (x *extractor) targetDirs() []string {
	var out []string
	for d := range x.targets {
		out = append(out, d)
	}
	sort.Strings(out)
	return out
}

// syncFS flushes the file system holding dir: the patched and replaced files of every
// incremental backup at once.
func syncFS(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return fmt.Errorf("restore: syncfs %s: %w", dir, err)
	}
	return nil
}

// writeManifest writes a backup_manifest for the restored directory: every file of the
// newest backup (pg_wal excepted, as the server's), read back for its CRC32C, with the newest
// manifest's WAL ranges.
func (cs *chainState) writeManifest() error {
	x := cs.x
	m, err := pgformat.ParseManifest(cs.manifestRaw)
	if err != nil {
		return fmt.Errorf("restore: the newest backup's manifest: %w", err)
	}
	var names []string
	for name, dir := range cs.have {
		if dir || name == "backup_manifest" || name == "postgresql.auto.conf" || name == "pg_wal" || strings.HasPrefix(name, "pg_wal/") {
			continue
		}
		names = append(names, name)
	}
	if _, err := os.Lstat(filepath.Join(x.root, "postgresql.auto.conf")); err == nil {
		names = append(names, "postgresql.auto.conf")
	}
	sort.Strings(names)
	tmp := filepath.Join(x.root, "backup_manifest.tmp")
	out, err := createFile(tmp, x.filePerm(0o600))
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	b, err := pgformat.NewManifestBuilder(out, pgformat.ManifestOptions{Version: 2, SystemIdentifier: cs.ctl.SystemIdentifier})
	if err != nil {
		out.Close()
		return err
	}
	for _, name := range names {
		p := filepath.Join(x.root, filepath.FromSlash(name))
		f, err := os.Open(p)
		if err != nil {
			out.Close()
			return fmt.Errorf("restore: reading back %s for the manifest: %w", name, err)
		}
		fi, err := f.Stat()
		if err == nil {
			err = b.AddFileContent(name, fi.Size(), fi.ModTime(), f)
		}
		f.Close()
		if err != nil {
			out.Close()
			return fmt.Errorf("restore: manifest entry %s: %w", name, err)
		}
	}
	if _, err := b.Finish(m.WALRanges); err != nil {
		out.Close()
		return fmt.Errorf("restore: write backup_manifest: %w", err)
	}
	if !x.opts.NoSync {
		if err := out.Sync(); err != nil {
			out.Close()
			return fmt.Errorf("restore: %w", err)
		}
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(x.root, "backup_manifest")); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if o := x.opts.Owner; o != nil {
		if err := os.Lchown(filepath.Join(x.root, "backup_manifest"), o.UID, o.GID); err != nil {
			return fmt.Errorf("restore: %w", err)
		}
	}
	cs.cr.ManifestFiles = b.Files()
	return nil
}

// writeAtomic replaces file name in the data directory (name.tmp written and fsynced, then
// renamed over it).
func (cs *chainState) writeAtomic(name string, data []byte, perm os.FileMode) error {
	x := cs.x
	if err := x.writeFile(name+".tmp", data, perm); err != nil {
		return err
	}
	if err := os.Rename(filepath.Join(x.root, name+".tmp"), filepath.Join(x.root, name)); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if !x.opts.NoSync {
		return syncDir(x.root)
	}
	return nil
}

// refuseIncremental reads a backup_label member and refuses an incremental backup's: it
// cannot be restored alone. It returns the content to write.
func refuseIncremental(body io.Reader, size int64) (io.Reader, error) {
	b, err := readSmall(body, size, pgformat.MaxBackupLabelSize, "backup_label")
	if err != nil {
		return nil, err
	}
	if l, err := pgformat.ParseBackupLabel(b); err == nil && l.Incremental() {
		return nil, fmt.Errorf("restore: %w: this is an incremental backup (INCREMENTAL FROM %s on timeline %d), which cannot be restored alone: restore the chain in order, the full backup first, in one restore (walweave restore -D DIR FULL INC1 INC2 ...)",
			verify.ErrChain, l.IncrementalFromLSN, l.IncrementalFromTLI)
	}
	return bytes.NewReader(b), nil
}
