package mux

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path"
	"strings"
	"time"

	"github.com/walweave/walweave/ringbuf"
	"github.com/walweave/walweave/tarw"
	"github.com/walweave/walweave/walstream"
	"github.com/walweave/walweave/walstream/pgrepl"
)

// Lines walweave appends to the stream's postgresql.auto.conf when the backup has
// tablespaces (see docs/stream-contract.md, item 1). Restore tools that relocate
// tablespaces remove exactly these lines.
const (
	TablespaceCommentPrefix = "# walweave: tablespace "
	InPlaceTablespaceLine   = "allow_in_place_tablespaces = on"
)

// maxAutoConfSize bounds the postgresql.auto.conf held in memory to append settings to.
const maxAutoConfSize = 16 << 20

// Backup takes a physical backup of the PostgreSQL 15+ server cfg.ConnString points at and
// writes it to w as one tar stream (docs/stream-contract.md): the server's data files
// with the WAL they need, received at the same time on a second replication connection,
// woven in between them, and backup_manifest last.
//
// On success the stream is complete (manifest and tar trailer written). On failure Backup
// returns an error naming the side (base backup, WAL receiver or output) and the phase;
// the stream is left unfinished (no manifest, no trailer), and no replication slot,
// walsender, server-side backup or goroutine is left behind. Errors from w are returned
// wrapped, so errors.Is(err, syscall.EPIPE) works. A *ChecksumError means the server found
// data checksum failures.
func Backup(ctx context.Context, w io.Writer, cfg Config) (Result, error) {
	start := time.Now()
	if err := cfg.normalize(); err != nil {
		return Result{}, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(discardHandler{})
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	r := &run{cfg: &cfg, log: log, ctx: ctx, cancel: cancel, start: start}
	err := r.backup(w)
	r.res.Duration = time.Since(start)
	if err != nil {
		r.phase(PhaseFailed)
		return r.res, err
	}
	r.phase(PhaseDone)
	return r.res, nil
}

// run is the state of one Backup call.
type run struct {
	cfg    *Config
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelCauseFunc
	start  time.Time
	res    Result

	src  Source
	rcv  *walstream.Receiver
	ring *ringbuf.Ring
	tw   *tarw.Writer

	fileMode, dirMode int64
	tablespaces       []Tablespace
	history           []*ringbuf.Segment // held until the data is done
	taken             []*ringbuf.Segment
	timelines         map[uint32]bool
	injectedRecovery  bool
	autoConfSeen      bool
	serverBytes       int64
	total             int64
	curPhase          Phase
	lastProgress      time.Time
}

func (r *run) backup(w io.Writer) (err error) {
	r.phase(PhaseConnecting)
	connCfg, err := pgrepl.ParseConfig(r.cfg.ConnString)
	if err != nil {
		return fmt.Errorf("mux: connection string: %w", err)
	}
	applyReplicationPassfile(connCfg, r.cfg.ConnString)
	bb, err := dialBaseBackup(r.ctx, connCfg.Copy(), r.cfg, r.log)
	if err != nil {
		return err
	}
	r.src = bb
	defer func() {
		if cerr := r.src.Close(); cerr != nil && err == nil && !errors.Is(cerr, context.Canceled) {
			r.log.Debug("closing the base backup connection", "err", cerr)
		}
	}()
	r.res.ServerVersion = pgrepl.ServerVersionNum(bb.conn)
	sys, err := pgrepl.IdentifySystem(r.ctx, bb.conn)
	if err != nil {
		return fmt.Errorf("mux: base backup connection: %w", err)
	}
	r.res.SystemID = sys.SystemID
	mode, err := pgrepl.Show(r.ctx, bb.conn, "data_directory_mode")
	if err != nil {
		return fmt.Errorf("mux: base backup connection: %w", err)
	}
	r.fileMode, r.dirMode = 0o600, 0o700
	if mode == "0750" {
		r.fileMode, r.dirMode = 0o640, 0o750
	}

	r.rcv, err = walstream.Connect(r.ctx, walstream.Config{ConnConfig: connCfg.Copy(), SlotName: r.cfg.SlotName, Logger: r.log})
	if err != nil {
		return fmt.Errorf("mux: WAL receiver: %w", err)
	}
	defer r.rcv.Close()
	if r.rcv.SystemID() != sys.SystemID {
		return fmt.Errorf("mux: system identifier differs between the base backup connection (%s) and the WAL connection (%s): the connection string reaches two different clusters (a load balancer or a DNS name with several hosts?); point it at one server", sys.SystemID, r.rcv.SystemID())
	}
	if err := r.rcv.PrepareSlot(r.ctx); err != nil {
		return fmt.Errorf("mux: WAL receiver: %w", err)
	}
	r.res.SlotName = r.rcv.SlotName()

	r.phase(PhaseCheckpoint)
	st, err := r.src.Begin(r.ctx)
	if err != nil {
		return r.fail("base backup", "start", err)
	}
	r.res.StartLSN, r.res.StartTimeline = st.StartLSN, st.Timeline
	r.tablespaces = st.Tablespaces
	r.res.Tablespaces = len(st.Tablespaces)
	r.total = st.TotalSize
	bb.onProgress = func(n int64) { r.serverBytes = n; r.progress(false) }
	r.log.Info("backup started", "start_lsn", st.StartLSN, "timeline", st.Timeline, "tablespaces", len(st.Tablespaces), "slot", r.res.SlotName)

	r.ring = ringbuf.New(r.cfg.RingSlots)
	r.timelines = map[uint32]bool{}
	recvDone := make(chan error, 1)
	go func() {
		err := r.rcv.Stream(r.ctx, r.ring, st.StartLSN, st.Timeline, sys.SystemID)
		if err != nil {
			r.cancel(fmt.Errorf("mux: WAL receiver: %w", err))
		}
		recvDone <- err
	}()
	defer func() {
		if err != nil {
			r.ring.Abort(err)
			r.cancel(err)
		}
		<-recvDone
		s := r.ring.Stats()
		r.res.RingHighWater, r.res.WALBlocked = s.HighWater, s.BlockedTime
	}()

	r.tw = tarw.NewWriter(w)
	r.phase(PhaseStreaming)
	if err := r.copyArchives(); err != nil {
		return err
	}

	end, err := r.src.End(r.ctx)
	if err != nil {
		return r.fail("base backup", "end", err)
	}
	r.res.EndLSN, r.res.EndTimeline = end.EndLSN, end.Timeline
	r.res.ArchiveBytesReceived = end.ArchiveBytes
	if end.Checksum != nil {
		return end.Checksum
	}
	r.log.Info("data done; waiting for the WAL up to the end position", "end_lsn", end.EndLSN, "timeline", end.Timeline)

	r.phase(PhaseFinishing)
	r.rcv.SetEnd(end.EndLSN, end.Timeline)
	if err := r.finishWAL(); err != nil {
		return err
	}

	r.phase(PhaseWritingTail)
	if err := r.tw.WriteFile("backup_manifest", r.fileMode, time.Now(), end.Manifest); err != nil {
		return r.fail("output", "write backup_manifest", err)
	}
	if err := r.tw.Close(); err != nil {
		return r.fail("output", "finish the archive", err)
	}
	r.res.BytesWritten = r.tw.Written()
	for tli := range r.timelines {
		r.res.Timelines = append(r.res.Timelines, tli)
	}
	sortTimelines(r.res.Timelines)
	return nil
}

// fail wraps an error with the side and phase, preferring the error that cancelled the run
// (the first failure on either side).
func (r *run) fail(side, phase string, err error) error {
	if cause := context.Cause(r.ctx); cause != nil && r.ctx.Err() != nil {
		if errors.Is(err, cause) || errors.Is(err, context.Canceled) || isTimeout(err) {
			return cause
		}
	}
	if r.tw != nil {
		r.res.BytesWritten = r.tw.Written()
	}
	return fmt.Errorf("mux: %s (%s): %w", side, phase, err)
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// copyArchives passes every server archive through, weaving WAL segments in at member
// boundaries.
func (r *run) copyArchives() error {
	var buf []byte
	for {
		a, err := r.src.NextArchive(r.ctx)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return r.fail("base backup", "next archive", err)
		}
		r.log.Debug("archive", "name", a.Name)
		tr := tarw.NewReader(a.Data)
		tr.SetArchiveName(a.Name)
		first := true
		for {
			m, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				return r.fail("base backup", "read "+a.Name, err)
			}
			// Weave: every complete segment waiting goes in before this member, except
			// before base.tar's first member, backup_label, which leads the main directory.
			if !(first && a.Tablespace == nil) {
				if err := r.drain(); err != nil {
					return err
				}
			}
			first = false
			if a.Tablespace != nil {
				tarw.Reroot(m, "pg_tblspc/"+a.Tablespace.OID)
			} else if written, err := r.mainMember(m, tr, &buf); err != nil || written {
				if err != nil {
					return err
				}
				continue
			}
			if m.Type == tarw.TypeFile {
				r.res.DataFiles++
			}
			if err := r.tw.WriteHeader(m); err != nil {
				return r.fail("output", "write "+m.Name, err)
			}
			if m.Size > 0 {
				in := &readErr{r: tr}
				if _, err := io.Copy(r.tw, in); err != nil {
					if in.err != nil {
						return r.fail("base backup", "copy "+m.Name, err)
					}
					return r.fail("output", "write "+m.Name, err)
				}
			}
		}
	}
}

// readErr remembers its reader's error, to tell a failing server from a failing writer
// after io.Copy.
type readErr struct {
	r   io.Reader
	err error
}

func (e *readErr) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		e.err = err
	}
	return n, err
}

// mainMember applies the main archive's transformations: pg_tblspc symlinks become
// directories, postgresql.auto.conf gets walweave's settings, standby.signal goes in before
// global/pg_control. written reports that it wrote the member itself.
func (r *run) mainMember(m *tarw.Member, tr *tarw.Reader, buf *[]byte) (written bool, err error) {
	switch {
	case m.Type == tarw.TypeSymlink && path.Dir(m.Name) == "pg_tblspc":
		m.Type, m.Linkname, m.Mode = tarw.TypeDir, "", r.dirMode
		return false, nil
	case m.Name == "postgresql.auto.conf" && m.Type == tarw.TypeFile && r.rewriteAutoConf():
		r.autoConfSeen = true
		if m.Size > maxAutoConfSize {
			return false, r.fail("base backup", "read postgresql.auto.conf", fmt.Errorf("%d bytes is too large to append settings to", m.Size))
		}
		b := bytes.NewBuffer((*buf)[:0])
		if _, err := io.Copy(b, tr); err != nil {
			return false, r.fail("base backup", "read postgresql.auto.conf", err)
		}
		content := r.appendAutoConf(b.Bytes())
		*buf = content[:0]
		r.res.DataFiles++
		if err := r.tw.WriteFile(m.Name, m.Mode, m.ModTime, content); err != nil {
			return false, r.fail("output", "write postgresql.auto.conf", err)
		}
		return true, r.injectRecovery()
	case m.Name == "global/pg_control":
		if !r.autoConfSeen && r.rewriteAutoConf() {
			r.autoConfSeen = true
			if err := r.tw.WriteFile("postgresql.auto.conf", r.fileMode, time.Now(), r.appendAutoConf(nil)); err != nil {
				return false, r.fail("output", "write postgresql.auto.conf", err)
			}
		}
		return false, r.injectRecovery()
	}
	return false, nil
}

func (r *run) rewriteAutoConf() bool { return len(r.tablespaces) > 0 || r.cfg.WriteRecoveryConf }

// appendAutoConf appends walweave's settings to postgresql.auto.conf's content.
func (r *run) appendAutoConf(content []byte) []byte {
	var b bytes.Buffer
	b.Write(content)
	if len(content) > 0 && content[len(content)-1] != '\n' {
		b.WriteByte('\n')
	}
	if len(r.tablespaces) > 0 {
		for _, ts := range r.tablespaces {
			fmt.Fprintf(&b, "%s%s was at %s\n", TablespaceCommentPrefix, ts.OID, ts.Location)
		}
		b.WriteString(InPlaceTablespaceLine + "\n")
	}
	if r.cfg.WriteRecoveryConf {
		conninfo, err := primaryConnInfo(r.cfg.ConnString, r.cfg.RecoveryConfPassword)
		if err != nil {
			r.log.Warn("could not build primary_conninfo", "err", err)
		}
		fmt.Fprintf(&b, "primary_conninfo = %s\n", quoteConfValue(conninfo))
		if r.cfg.SlotName != "" {
			fmt.Fprintf(&b, "primary_slot_name = %s\n", quoteConfValue(r.cfg.SlotName))
		}
	}
	return b.Bytes()
}

func (r *run) injectRecovery() error {
	if !r.cfg.WriteRecoveryConf || r.injectedRecovery {
		return nil
	}
	r.injectedRecovery = true
	if err := r.tw.WriteFile("standby.signal", r.fileMode, time.Now(), nil); err != nil {
		return r.fail("output", "write standby.signal", err)
	}
	return nil
}

// drain writes every segment the ring holds (history files are held for the end).
func (r *run) drain() error {
	r.taken = r.ring.TryTakeAll(r.taken[:0])
	for _, seg := range r.taken {
		if err := r.writeSegment(seg); err != nil {
			return err
		}
	}
	r.progress(false)
	return nil
}

func (r *run) writeSegment(seg *ringbuf.Segment) error {
	if seg.Kind == ringbuf.KindHistory {
		h := &ringbuf.Segment{Kind: seg.Kind, Name: seg.Name, Timeline: seg.Timeline, Data: append([]byte(nil), seg.Data...)}
		r.history = append(r.history, h)
		r.ring.Release(seg)
		return nil
	}
	err := r.tw.WriteFile("pg_wal/"+seg.Name, r.fileMode, time.Now(), seg.Data)
	r.timelines[seg.Timeline] = true
	r.ring.Release(seg)
	if err != nil {
		return r.fail("output", "write pg_wal/"+seg.Name, err)
	}
	r.res.WALSegments++
	return nil
}

// finishWAL writes the history files, then every remaining segment up to the one holding
// the end LSN, waiting for the receiver to get there (it may be blocked on a full ring right
// now: taking segments unblocks it).
func (r *run) finishWAL() error {
	if err := r.writeHistory(); err != nil {
		return err
	}
	for {
		seg, err := r.ring.Take(r.ctx)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return r.fail("WAL receiver", "wait for the end of WAL", err)
		}
		if err := r.writeSegment(seg); err != nil {
			return err
		}
		if err := r.writeHistory(); err != nil { // a timeline switch while finishing
			return err
		}
		r.progress(false)
	}
}

func (r *run) writeHistory() error {
	for _, h := range r.history {
		if err := r.tw.WriteFile("pg_wal/"+h.Name, r.fileMode, time.Now(), h.Data); err != nil {
			return r.fail("output", "write pg_wal/"+h.Name, err)
		}
		r.res.HistoryFiles++
	}
	r.history = r.history[:0]
	return nil
}

// phase records a phase change and reports progress.
func (r *run) phase(p Phase) {
	r.curPhase = p
	r.log.Debug("phase", "phase", string(p))
	r.progress(true)
}

func (r *run) progress(force bool) {
	if r.cfg.Progress == nil {
		return
	}
	now := time.Now()
	if !force && now.Sub(r.lastProgress) < r.cfg.ProgressInterval {
		return
	}
	r.lastProgress = now
	p := Progress{Phase: r.curPhase, BytesDone: r.serverBytes, TotalBytes: r.total,
		WALSegments: r.res.WALSegments, Elapsed: now.Sub(r.start)}
	if r.tw != nil {
		p.BytesWritten = r.tw.Written()
	}
	if r.ring != nil {
		s := r.ring.Stats()
		p.RingOccupancy, p.RingCapacity = s.Occupied, s.Capacity
	}
	if p.TotalBytes > 0 && p.BytesDone > p.TotalBytes {
		p.TotalBytes = p.BytesDone
	}
	r.cfg.Progress(p)
}

func sortTimelines(t []uint32) {
	for i := 1; i < len(t); i++ {
		for j := i; j > 0 && t[j] < t[j-1]; j-- {
			t[j], t[j-1] = t[j-1], t[j]
		}
	}
}

// quoteConfValue quotes a value for postgresql.auto.conf.
func quoteConfValue(s string) string {
	return "'" + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), "'", `\'`) + "'"
}

type discardHandler struct{}

func (discardHandler) Enabled(context.Context, slog.Level) bool  { return false }
func (discardHandler) Handle(context.Context, slog.Record) error { return nil }
func (d discardHandler) WithAttrs([]slog.Attr) slog.Handler      { return d }
func (d discardHandler) WithGroup(string) slog.Handler           { return d }
