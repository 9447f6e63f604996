package mux

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"path"
	"time"

	"github.com/walweave/walweave/internal/readerr"
	"github.com/walweave/walweave/pgformat"
	"github.com/walweave/walweave/ringbuf"
	"github.com/walweave/walweave/source"
	"github.com/walweave/walweave/tarw"
)

// maxAutoConfSize bounds the postgresql.auto.conf held in memory to append settings to.
const maxAutoConfSize = 16 << 20

// walFeed is where the weaver takes complete WAL segments from: a ringbuf.Ring filled by the
// WAL receiver. TryTakeAll never waits; Take waits for the next segment and returns io.EOF
// once the feed ended at the position it was asked to reach.
type walFeed interface {
	TryTakeAll(dst []*ringbuf.Segment) []*ringbuf.Segment
	Take(ctx context.Context) (*ringbuf.Segment, error)
	Release(seg *ringbuf.Segment)
}

// weaver writes the stream contract (docs/stream-contract.md) from a member-level source and a
// WAL feed: tablespace members re-rooted under pg_tblspc/<oid>/, the main directory's members
// in the source's order with walweave's postgresql.auto.conf lines, every complete WAL segment
// written at the next member boundary, the history files and the remaining segments after the
// data, backup_manifest last. It knows no protocol: the tests drive it with a fake source and a
// ring filled by hand.
type weaver struct {
	tw                *tarw.Writer
	wal               walFeed
	fileMode, dirMode int64
	tablespaces       []source.Tablespace
	// recoveryConf is appended to postgresql.auto.conf (primary_conninfo ... for -R), and
	// standbySignal adds standby.signal before global/pg_control.
	recoveryConf  []byte
	standbySignal bool
	// dropStandby leaves the server's standby.signal out and removes primary_conninfo and
	// primary_slot_name from its postgresql.auto.conf (Config.StandbyConfig "drop").
	dropStandby bool
	// origin is the PAX comment given to backup_label (pgformat.BackupOrigin's text): which
	// cluster and major version the stream is of, readable from its head. "" adds none.
	origin string
	// fail attributes an error to a side and step.
	fail func(side Side, step string, err error) error
	// progress is called at member boundaries.
	progress func()

	autoConf         []byte // postgresql.auto.conf as written (nil: not written yet)
	autoConfMode     int64
	injectedRecovery bool
	history          []*ringbuf.Segment // held until the data is done
	taken            []*ringbuf.Segment
	timelines        map[uint32]bool
	dataFiles        int
	walSegments      int
	historyFiles     int
}

func newWeaver(tw *tarw.Writer, wal walFeed, fail func(Side, string, error) error) *weaver {
	return &weaver{tw: tw, wal: wal, fail: fail, fileMode: 0o600, dirMode: 0o700,
		timelines: map[uint32]bool{}, progress: func() {}}
}

// copyData passes every member of src through, weaving WAL segments in at member boundaries.
// It returns when src has no more members.
func (w *weaver) copyData(ctx context.Context, src source.Source) error {
	firstMain := true
	for {
		m, err := src.Next(ctx)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return w.fail(SideBaseBackup, "next member", err)
		}
		h := m.Header
		// Every complete segment waiting goes in before this member, except before the main
		// directory's first member (BASE_BACKUP's backup_label), which leads it.
		if !(firstMain && m.Tablespace == nil) {
			if err := w.drain(); err != nil {
				return err
			}
		}
		if m.Tablespace != nil {
			tarw.Reroot(h, "pg_tblspc/"+m.Tablespace.OID)
		} else {
			firstMain = false
			if written, err := w.mainMember(h, m.Data); err != nil || written {
				if err != nil {
					return err
				}
				continue
			}
		}
		if h.Type == tarw.TypeFile {
			w.dataFiles++
		}
		if err := w.tw.WriteHeader(h); err != nil {
			return w.fail(SideOutput, "write "+h.Name, err)
		}
		if h.Size > 0 {
			in := &readerr.Reader{R: m.Data}
			if _, err := io.Copy(w.tw, in); err != nil {
				if in.Err != nil {
					return w.fail(SideBaseBackup, "copy "+h.Name, err)
				}
				return w.fail(SideOutput, "write "+h.Name, err)
			}
		}
	}
}

// mainMember applies the main directory's transformations: pg_tblspc symlinks become
// directories, postgresql.auto.conf gets walweave's settings, standby.signal goes in before
// global/pg_control, backup_label carries the stream's origin. written reports that it wrote
// the member itself.
func (w *weaver) mainMember(m *tarw.Member, data io.Reader) (written bool, err error) {
	switch {
	case m.Name == "backup_label" && m.Type == tarw.TypeFile:
		m.Comment = w.origin
		return false, nil
	case m.Type == tarw.TypeSymlink && path.Dir(m.Name) == "pg_tblspc":
		m.Type, m.Linkname, m.Mode = tarw.TypeDir, "", w.dirMode
		return false, nil
	case w.dropStandby && m.Name == "standby.signal" && m.Type == tarw.TypeFile:
		return true, nil
	case m.Name == "postgresql.auto.conf" && m.Type == tarw.TypeFile:
		// Held in memory (it is small) so that settings can be appended now and, for a
		// recovery target known only at the end, again in the tail.
		if m.Size > maxAutoConfSize {
			return false, w.fail(SideBaseBackup, "read postgresql.auto.conf", fmt.Errorf("%d bytes is too large to append settings to", m.Size))
		}
		var b bytes.Buffer
		if _, err := io.Copy(&b, data); err != nil {
			return false, w.fail(SideBaseBackup, "read postgresql.auto.conf", err)
		}
		w.dataFiles++
		if !w.rewriteAutoConf() {
			w.autoConf, w.autoConfMode = b.Bytes(), m.Mode
			if err := w.tw.WriteHeader(m); err != nil {
				return false, w.fail(SideOutput, "write postgresql.auto.conf", err)
			}
			if _, err := w.tw.Write(w.autoConf); err != nil {
				return false, w.fail(SideOutput, "write postgresql.auto.conf", err)
			}
			return true, nil
		}
		if err := w.writeAutoConf(m.Mode, m.ModTime, w.appendAutoConf(b.Bytes())); err != nil {
			return false, err
		}
		return true, w.injectRecovery()
	case m.Name == "global/pg_control":
		if w.autoConf == nil && w.rewriteAutoConf() {
			if err := w.writeAutoConf(w.fileMode, time.Now(), w.appendAutoConf(nil)); err != nil {
				return false, err
			}
		}
		return false, w.injectRecovery()
	}
	return false, nil
}

func (w *weaver) writeAutoConf(mode int64, mtime time.Time, content []byte) error {
	w.autoConf, w.autoConfMode = content, mode
	if err := w.tw.WriteFile("postgresql.auto.conf", mode, mtime, content); err != nil {
		return w.fail(SideOutput, "write postgresql.auto.conf", err)
	}
	return nil
}

func (w *weaver) rewriteAutoConf() bool {
	return len(w.tablespaces) > 0 || w.recoveryConf != nil || w.dropStandby
}

// appendAutoConf appends walweave's settings to postgresql.auto.conf's content (without a
// standby's primary_conninfo and primary_slot_name with dropStandby).
func (w *weaver) appendAutoConf(content []byte) []byte {
	if w.dropStandby {
		content = pgformat.RemoveConfSettings(content, "primary_conninfo", "primary_slot_name")
	}
	out := append([]byte(nil), content...)
	if len(out) > 0 && out[len(out)-1] != '\n' {
		out = append(out, '\n')
	}
	ts := make([]pgformat.TablespaceLocation, len(w.tablespaces))
	for i, t := range w.tablespaces {
		ts[i] = pgformat.TablespaceLocation{OID: t.OID, Location: t.Location}
	}
	out = pgformat.AppendTablespaceLines(out, ts)
	return append(out, w.recoveryConf...)
}

func (w *weaver) injectRecovery() error {
	if !w.standbySignal || w.injectedRecovery {
		return nil
	}
	w.injectedRecovery = true
	if err := w.tw.WriteFile("standby.signal", w.fileMode, time.Now(), nil); err != nil {
		return w.fail(SideOutput, "write standby.signal", err)
	}
	return nil
}

// drain writes every segment the feed holds (history files are held for the end).
func (w *weaver) drain() error {
	w.taken = w.wal.TryTakeAll(w.taken[:0])
	for _, seg := range w.taken {
		if err := w.writeSegment(seg); err != nil {
			return err
		}
	}
	w.progress()
	return nil
}

func (w *weaver) writeSegment(seg *ringbuf.Segment) error {
	if seg.Kind == ringbuf.KindHistory {
		h := &ringbuf.Segment{Kind: seg.Kind, Name: seg.Name, Timeline: seg.Timeline, Data: append([]byte(nil), seg.Data...)}
		w.history = append(w.history, h)
		w.wal.Release(seg)
		return nil
	}
	err := w.tw.WriteFile("pg_wal/"+seg.Name, w.fileMode, time.Now(), seg.Data)
	w.timelines[seg.Timeline] = true
	w.wal.Release(seg)
	if err != nil {
		return w.fail(SideOutput, "write pg_wal/"+seg.Name, err)
	}
	w.walSegments++
	return nil
}

// finishWAL writes the history files, then every remaining segment until the feed ends (at
// the segment holding the position the WAL side was asked to reach), waiting for the receiver
// to get there (it may be blocked on a full ring right now: taking segments unblocks it).
func (w *weaver) finishWAL(ctx context.Context) error {
	if err := w.writeHistory(); err != nil {
		return err
	}
	for {
		seg, err := w.wal.Take(ctx)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return w.fail(SideWAL, "wait for the end of WAL", err)
		}
		if err := w.writeSegment(seg); err != nil {
			return err
		}
		if err := w.writeHistory(); err != nil { // a timeline switch while finishing
			return err
		}
		w.progress()
	}
}

func (w *weaver) writeHistory() error {
	for _, h := range w.history {
		if err := w.tw.WriteFile("pg_wal/"+h.Name, w.fileMode, time.Now(), h.Data); err != nil {
			return w.fail(SideOutput, "write pg_wal/"+h.Name, err)
		}
		w.historyFiles++
	}
	w.history = w.history[:0]
	return nil
}

// appendRecoveryTarget writes postgresql.auto.conf again, as it was written plus settings, and
// recovery.signal: a later member replaces an earlier one when the stream is extracted, so a
// recovery target known only after the data (a fleet's restore point) still reaches the copy.
func (w *weaver) appendRecoveryTarget(settings []byte) error {
	content := append([]byte(nil), w.autoConf...)
	// The server's file may lack a final newline (edited by hand): the settings must start a
	// line of their own, PostgreSQL refuses "work_mem = '8MB'recovery_target_name = ...".
	if len(content) > 0 && content[len(content)-1] != '\n' {
		content = append(content, '\n')
	}
	content = append(content, settings...)
	if w.autoConf == nil {
		w.autoConfMode = w.fileMode
	}
	if err := w.writeAutoConf(w.autoConfMode, time.Now(), content); err != nil {
		return err
	}
	if err := w.tw.WriteFile("recovery.signal", w.fileMode, time.Now(), nil); err != nil {
		return w.fail(SideOutput, "write recovery.signal", err)
	}
	return nil
}

// finish writes backup_manifest and the tar trailer.
func (w *weaver) finish(manifest []byte) error {
	if err := w.tw.WriteFile("backup_manifest", w.fileMode, time.Now(), manifest); err != nil {
		return w.fail(SideOutput, "write backup_manifest", err)
	}
	if err := w.tw.Close(); err != nil {
		return w.fail(SideOutput, "finish the archive", err)
	}
	return nil
}
