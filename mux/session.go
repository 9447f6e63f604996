package mux

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/walweave/walweave/internal/pgrepl"
	"github.com/walweave/walweave/internal/source/basebackup"
	"github.com/walweave/walweave/internal/source/sqlfetch"
	"github.com/walweave/walweave/pgformat"
	"github.com/walweave/walweave/ringbuf"
	"github.com/walweave/walweave/source"
	"github.com/walweave/walweave/tarw"
	"github.com/walweave/walweave/walstream"
)

// Backup takes a physical backup of the PostgreSQL 15+ server cfg.ConnString points at and
// writes it to w as one tar stream (docs/stream-contract.md): the server's data files with the
// WAL they need, received at the same time on a second replication connection, woven in
// between them, and backup_manifest last. It is Start, CopyData and Finish in one call.
//
// On success the stream is complete (manifest and tar trailer written). On failure Backup
// returns an *Error naming the server, side (base backup, WAL receiver or output) and phase;
// the stream is left unfinished (no manifest, no trailer), and no replication slot,
// walsender, server-side backup or goroutine is left behind. Errors from w are returned
// wrapped, so errors.Is(err, syscall.EPIPE) works. A *ChecksumError means the server found
// data checksum failures.
func Backup(ctx context.Context, w io.Writer, cfg Config) (Result, error) {
	s, err := Start(ctx, w, cfg)
	if err != nil {
		return s.Result(), err
	}
	defer s.Close()
	if _, err := s.CopyData(ctx); err != nil {
		return s.Result(), err
	}
	return s.Finish(ctx)
}

// Session is one backup taken in phases, for callers that need to act between them (a fleet
// backup writes a restore point on every server after every server's data is done, then
// extends each WAL stream past it):
//
//	s, err := mux.Start(ctx, w, cfg) // both connections, the slot, BASE_BACKUP started
//	end, err := s.CopyData(ctx)      // the data files, WAL woven in; end.EndLSN known
//	err = s.ExtendWAL(lsn)           // optional: the stream's WAL reaches lsn too
//	res, err := s.Finish(ctx)        // the rest of the WAL, backup_manifest, the trailer
//	s.Close()                        // always: aborts an unfinished backup
//
// A Session's methods are called from one goroutine (the owner), except Abort and Close, which
// may come from any goroutine at any time. From another goroutine they only cancel: the call
// in progress returns (with the backup failed) and the owner releases the connections, the
// slot and the receiver's goroutine as that call returns, or at once in Close when no call is
// in progress. The first failure on either side cancels the other, and every later call
// returns that failure.
type Session struct {
	// mu is held by the owner for the length of each call, and by Close while it releases:
	// another goroutine's Close that finds it held only cancels and leaves closeReq for the
	// owner (exit).
	mu       sync.Mutex
	closeReq atomic.Bool
	closed   atomic.Bool

	cfg    *Config
	log    *slog.Logger
	ctx    context.Context // the session's: cancelled by the first failure or by Abort
	cancel context.CancelCauseFunc
	start  time.Time
	server string

	res Result

	src      source.Source
	rcv      *walstream.Receiver
	ring     *ringbuf.Ring
	tw       *tarw.Writer
	wv       *weaver
	recvDone chan error

	end          source.End
	walTarget    pgformat.LSN
	dataDone     bool
	finished     bool
	err          error // sticky
	serverBytes  int64
	total        int64
	curPhase     Phase
	lastProgress time.Time
	checkpointAt time.Time
	tailRecovery []byte // AppendRecoveryConf's settings
}

// DataEnd is what CopyData returns: where the data side ended.
type DataEnd struct {
	EndLSN   pgformat.LSN
	Timeline uint32
}

// Start connects both sides, checks the server (version, same system on both connections),
// creates the WAL side's slot, starts the backup on the server (the start checkpoint runs
// here) and starts streaming WAL. Nothing is written to w yet. On error the Session is
// already closed; its Result says how far it got.
func Start(ctx context.Context, w io.Writer, cfg Config) (*Session, error) {
	s := &Session{start: time.Now()}
	if err := cfg.normalize(); err != nil {
		s.closed.Store(true)
		return s, err
	}
	s.cfg = &cfg
	s.log = cfg.Logger
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.server = serverName(&cfg)
	s.ctx, s.cancel = context.WithCancelCause(ctx)
	s.tw = tarw.NewWriter(w)
	if err := s.begin(); err != nil {
		s.abort(err)
		s.release()
		return s, s.err
	}
	return s, nil
}

// enter starts a call of the owner's.
func (s *Session) enter() { s.mu.Lock() }

// exit ends a call of the owner's: when another goroutine asked to close meanwhile, the owner
// releases now. The check is repeated after unlocking, for a Close that found the lock still
// held just before.
func (s *Session) exit() {
	for {
		if s.closeReq.Load() {
			s.release()
		}
		s.mu.Unlock()
		if !s.closeReq.Load() || s.closed.Load() || !s.mu.TryLock() {
			return
		}
	}
}

// serverName names the server in errors: Config.Name, else host:port of the connection string.
func serverName(cfg *Config) string {
	if cfg.Name != "" {
		return cfg.Name
	}
	pc, err := pgrepl.ParseConfig(cfg.ConnString)
	if err != nil || pc.Host == "" {
		return ""
	}
	if strings.HasPrefix(pc.Host, "/") {
		return pc.Host + ":" + strconv.Itoa(int(pc.Port))
	}
	return net.JoinHostPort(pc.Host, strconv.Itoa(int(pc.Port)))
}

func (s *Session) begin() error {
	s.phase(PhaseConnecting)
	connCfg, err := pgrepl.ParseConfig(s.cfg.ConnString)
	if err != nil {
		return fmt.Errorf("mux: connection string: %w", err)
	}
	applyReplicationPassfile(connCfg, s.cfg.ConnString)
	pgrepl.ApplyTCP(connCfg, s.cfg.tcp())
	s.src = s.cfg.Source
	if s.src == nil && s.cfg.Jobs >= 2 {
		s.src = sqlfetch.New(sqlfetch.Config{
			ConnString: s.cfg.ConnString, Jobs: s.cfg.Jobs, Label: s.cfg.Label,
			Checkpoint: s.cfg.Checkpoint, ManifestChecksums: s.cfg.ManifestChecksums,
			NoVerifyChecksums: s.cfg.NoVerifyChecksums, Logger: s.log, TCP: s.cfg.tcp(),
		})
	}
	if s.src == nil {
		s.src = basebackup.New(basebackup.Config{
			ConnConfig: connCfg.Copy(), Label: s.cfg.Label, Checkpoint: s.cfg.Checkpoint,
			MaxRate: s.cfg.MaxRate, NoVerifyChecksums: s.cfg.NoVerifyChecksums,
			ManifestChecksums: s.cfg.ManifestChecksums, Compression: s.cfg.ServerCompression,
			Progress: s.cfg.Progress != nil, IncrementalFrom: s.cfg.IncrementalFrom, Logger: s.log, ProgressTimeout: s.cfg.ProgressTimeout,
		})
		s.res.Incremental = s.cfg.IncrementalFrom != nil
	}
	info, err := s.src.Open(s.ctx)
	s.res.ServerVersion = info.ServerVersion
	if err != nil {
		return s.fail(SideBaseBackup, "connect", err)
	}
	s.res.SystemID = info.SystemID
	fileMode, dirMode := int64(0o600), int64(0o700)
	if info.GroupAccess {
		fileMode, dirMode = 0o640, 0o750
	}

	s.rcv, err = walstream.Connect(s.ctx, walstream.Config{ConnConfig: connCfg.Copy(), SlotName: s.cfg.SlotName, Logger: s.log,
		ProgressTimeout: s.cfg.ProgressTimeout})
	if err != nil {
		return s.fail(SideWAL, "connect", err)
	}
	if s.rcv.SystemID() != info.SystemID {
		return s.fail(SideWAL, "connect", fmt.Errorf("system identifier differs between the base backup connection (%s) and the WAL connection (%s): the connection string reaches two different clusters (a load balancer or a DNS name with several hosts?); point it at one server", info.SystemID, s.rcv.SystemID()))
	}
	if err := s.rcv.PrepareSlot(s.ctx); err != nil {
		return s.fail(SideWAL, "create the slot", err)
	}
	s.res.SlotName = s.rcv.SlotName()

	s.phase(PhaseCheckpoint)
	s.checkpointAt = time.Now()
	// The WAL connection is idle until the checkpoint ends: watched meanwhile, so that its
	// end (a terminated walsender, a cut network) cancels the data side at once.
	stopWatch := s.rcv.Watch(s.probeInterval(), s.cfg.progressTimeout(), func(err error) {
		s.cancel(&Error{Server: s.server, Side: SideWAL, Phase: PhaseCheckpoint, Step: "wait for the start checkpoint", Err: err})
	})
	st, err := s.src.Start(s.ctx, func(n int64) { s.serverBytes = n; s.progress(false) })
	werr := stopWatch()
	if err != nil {
		return s.fail(SideBaseBackup, "start", err)
	}
	if werr != nil {
		return s.fail(SideWAL, "wait for the start checkpoint", werr)
	}
	s.setResult(func(r *Result) {
		r.StartLSN, r.StartTimeline = st.StartLSN, st.Timeline
		r.Tablespaces = len(st.Tablespaces)
		r.CheckpointWait = time.Since(s.checkpointAt)
	})
	s.total = st.TotalSize
	s.log.Info("backup started", "start_lsn", st.StartLSN, "timeline", st.Timeline, "tablespaces", len(st.Tablespaces), "slot", s.res.SlotName)

	s.ring = ringbuf.New(s.cfg.RingSlots)
	if s.cfg.Budget != nil {
		s.ring.SetBudget(s.cfg.Budget)
	}
	s.recvDone = make(chan error, 1)
	go func() {
		err := s.rcv.Stream(s.ctx, s.ring, st.StartLSN, st.Timeline, info.SystemID)
		if err != nil {
			// Built here rather than by fail: this goroutine touches nothing the session's
			// goroutine writes.
			s.cancel(&Error{Server: s.server, Side: SideWAL, Phase: PhaseStreaming, Step: "stream", Err: err})
		}
		s.recvDone <- err
	}()

	s.wv = newWeaver(s.tw, s.ring, s.fail)
	s.wv.fileMode, s.wv.dirMode = fileMode, dirMode
	s.wv.tablespaces = st.Tablespaces
	if id, err := strconv.ParseUint(info.SystemID, 10, 64); err == nil && id != 0 && info.ServerVersion != 0 {
		s.wv.origin = pgformat.BackupOrigin{SystemID: id, ServerVersion: info.ServerVersion}.String()
	}
	if s.cfg.WriteRecoveryConf {
		s.wv.recoveryConf = recoveryConfLines(s.cfg, s.log)
		s.wv.standbySignal = true
	}
	s.wv.dropStandby = s.cfg.StandbyConfig == StandbyDrop
	s.wv.progress = func() { s.progress(false) }
	return nil
}

// probeInterval is how often the idle WAL connection is probed during the start checkpoint.
func (s *Session) probeInterval() time.Duration {
	p := walstream.DefaultProbeInterval
	if t := s.cfg.progressTimeout(); t > 0 {
		p = min(p, max(t/3, time.Second))
	}
	return p
}

// recoveryConfLines are the -R settings appended to postgresql.auto.conf.
func recoveryConfLines(cfg *Config, log *slog.Logger) []byte {
	conninfo, err := primaryConnInfo(cfg.ConnString, cfg.RecoveryConfPassword)
	if err != nil {
		log.Warn("could not build primary_conninfo", "err", err)
	}
	b := []byte(pgformat.ConfLine("primary_conninfo", conninfo))
	if cfg.SlotName != "" {
		b = append(b, pgformat.ConfLine("primary_slot_name", cfg.SlotName)...)
	}
	return b
}

// CopyData writes the data side's members to the stream, weaving in every WAL segment that
// completes meanwhile, and finishes the data side: when it returns, the backup's end LSN is
// known and the server's backup has ended. The WAL side keeps streaming.
func (s *Session) CopyData(ctx context.Context) (DataEnd, error) {
	s.enter()
	defer s.exit()
	if err := s.usable(); err != nil {
		return DataEnd{}, err
	}
	if s.dataDone {
		return DataEnd{}, errors.New("mux: CopyData called twice")
	}
	stop := s.follow(ctx)
	defer stop()
	s.phase(PhaseStreaming)
	if err := s.wv.copyData(s.ctx, s.src); err != nil {
		return DataEnd{}, s.abort(err)
	}
	end, err := s.src.End(s.ctx)
	if err != nil {
		return DataEnd{}, s.abort(s.fail(SideBaseBackup, "end", err))
	}
	s.end = end
	s.dataDone = true
	s.setResult(func(r *Result) {
		r.EndLSN, r.EndTimeline = end.EndLSN, end.Timeline
		r.ArchiveBytesReceived = end.WireBytes
	})
	if end.Checksum != nil {
		return DataEnd{}, s.abort(end.Checksum)
	}
	s.walTarget = end.EndLSN
	s.log.Info("data done", "end_lsn", end.EndLSN, "timeline", end.Timeline)
	return DataEnd{EndLSN: end.EndLSN, Timeline: end.Timeline}, nil
}

// ExtendWAL makes the stream's WAL reach lsn (on the backup's end timeline) instead of stopping
// at the segment holding the backup's end: the segments up to the one holding lsn go into the
// stream. It is called after CopyData and before Finish; an lsn before the end changes
// nothing. A fleet backup uses it for the restore point written after every server's data.
func (s *Session) ExtendWAL(lsn pgformat.LSN) error {
	s.enter()
	defer s.exit()
	if err := s.usable(); err != nil {
		return err
	}
	if !s.dataDone {
		return errors.New("mux: ExtendWAL before CopyData finished")
	}
	if lsn > s.walTarget {
		s.walTarget = lsn
	}
	return nil
}

// AppendRecoveryConf has the stream carry settings appended to postgresql.auto.conf plus a
// recovery.signal, both written after the WAL (a later member replaces an earlier one on
// extraction): for recovery targets known only after the data, such as a fleet's restore
// point. Called after CopyData and before Finish. PostgreSQL refuses recovery.signal without
// a restore_command: give one that finds nothing ("restore_command = 'false'") to have
// recovery read only the stream's pg_wal, or the archive's command.
func (s *Session) AppendRecoveryConf(settings string) error {
	s.enter()
	defer s.exit()
	if err := s.usable(); err != nil {
		return err
	}
	if !s.dataDone {
		return errors.New("mux: AppendRecoveryConf before CopyData finished")
	}
	if settings != "" && !strings.HasSuffix(settings, "\n") {
		settings += "\n"
	}
	s.tailRecovery = append(s.tailRecovery, settings...)
	return nil
}

// Finish waits for the WAL up to the end (or the ExtendWAL position), writes it, the history
// files, backup_manifest and the tar trailer, and closes both connections.
func (s *Session) Finish(ctx context.Context) (Result, error) {
	s.enter()
	defer s.exit()
	if err := s.usable(); err != nil {
		return s.result(), err
	}
	if !s.dataDone {
		return s.result(), errors.New("mux: Finish before CopyData")
	}
	stop := s.follow(ctx)
	defer stop()
	s.phase(PhaseFinishing)
	s.rcv.SetEnd(s.walTarget, s.end.Timeline)
	if err := s.wv.finishWAL(s.ctx); err != nil {
		return s.result(), s.abort(err)
	}
	s.phase(PhaseWritingTail)
	if s.tailRecovery != nil {
		if err := s.wv.appendRecoveryTarget(s.tailRecovery); err != nil {
			return s.result(), s.abort(err)
		}
	}
	if err := s.wv.finish(s.end.Manifest); err != nil {
		return s.result(), s.abort(err)
	}
	s.res.Manifest = s.end.Manifest
	s.finished = true
	s.release()
	s.phase(PhaseDone)
	return s.result(), nil
}

// Abort ends the backup with cause (nil: context.Canceled) from any goroutine: the call in
// progress returns, connections close, the stream stays unfinished.
func (s *Session) Abort(cause error) {
	if cause == nil {
		cause = context.Canceled
	}
	if s.cancel != nil {
		s.cancel(cause)
	}
}

// follow makes the caller's ctx of a method cancel the session.
func (s *Session) follow(ctx context.Context) func() bool {
	return context.AfterFunc(ctx, func() { s.cancel(context.Cause(ctx)) })
}

// usable returns the sticky error, or the session's cancellation.
func (s *Session) usable() error {
	if s.err != nil {
		return s.err
	}
	if s.closed.Load() {
		return errors.New("mux: the backup session is closed")
	}
	if s.ctx.Err() != nil {
		return s.abort(s.wrapCause(context.Cause(s.ctx)))
	}
	return nil
}

// abort records the first failure, cancels the other side and returns the failure (the
// cancellation cause when the other side failed first).
func (s *Session) abort(err error) error {
	if s.err != nil {
		return s.err
	}
	if cause := context.Cause(s.ctx); s.ctx.Err() != nil && cause != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, cause) || isTimeout(err) {
			err = s.wrapCause(cause)
		}
	}
	s.err = err
	if s.ring != nil {
		s.ring.Abort(err)
	}
	s.cancel(err)
	s.phase(PhaseFailed)
	return err
}

// errClosed is the cancellation cause of a Close from another goroutine during a call.
var errClosed = errors.New("mux: the session was closed before the backup finished")

// Close releases everything: it aborts an unfinished backup (the server's backup, the slot and
// the walsenders go with the connections), waits for the WAL receiver's goroutine and leaves
// the stream unfinished. It is safe to call more than once, and from any goroutine: while
// another goroutine's call is in progress, Close only makes that call return, and the
// session is released as it returns.
func (s *Session) Close() error {
	if s.closed.Load() {
		return nil
	}
	s.closeReq.Store(true)
	if !s.mu.TryLock() {
		s.cancel(errClosed)
		return nil
	}
	s.release()
	s.mu.Unlock()
	return nil
}

// release is Close with the lock held.
func (s *Session) release() {
	if s.closed.Load() {
		return
	}
	s.closed.Store(true)
	if !s.finished && s.err == nil {
		s.abort(&Error{Server: s.server, Side: SideOutput, Phase: s.curPhase, Step: "close", Err: errors.New("closed before the backup finished")})
	}
	if s.src != nil {
		if err := s.src.Close(); err != nil && !errors.Is(err, context.Canceled) {
			s.log.Debug("closing the base backup connection", "err", err)
		}
	}
	if s.recvDone != nil {
		<-s.recvDone
		st := s.ring.Stats()
		s.setResult(func(r *Result) { r.RingHighWater, r.WALBlocked = st.HighWater, st.BlockedTime })
	}
	if s.rcv != nil {
		s.rcv.Close()
	}
	if s.cancel != nil {
		s.cancel(nil)
	}
}

// Result returns what is known of the backup so far (complete after Finish). Like the other
// methods but Abort and Close, it is called from the goroutine that runs the session; the
// Progress callback reports from there too (or, for PhaseFailed, from a Close of another
// goroutine that found no call in progress).
func (s *Session) Result() Result {
	// Held already when Result is called from the Progress callback (by the call that
	// reports); otherwise taken when free.
	if s.mu.TryLock() {
		defer s.mu.Unlock()
	}
	return s.result()
}

func (s *Session) result() Result {
	r := s.res
	r.Duration = time.Since(s.start)
	if s.wv != nil {
		r.DataFiles, r.WALSegments, r.HistoryFiles = s.wv.dataFiles, s.wv.walSegments, s.wv.historyFiles
		r.Timelines = nil
		for tli := range s.wv.timelines {
			r.Timelines = append(r.Timelines, tli)
		}
		sortTimelines(r.Timelines)
	}
	if s.tw != nil {
		r.BytesWritten = s.tw.Flushed() // what reached w (all of it after Finish)
	}
	return r
}

func (s *Session) setResult(f func(*Result)) { f(&s.res) }

// phase records a phase change and reports progress.
func (s *Session) phase(p Phase) {
	s.curPhase = p
	s.log.Debug("phase", "phase", string(p))
	s.progress(true)
}

func (s *Session) progress(force bool) {
	if s.cfg == nil || s.cfg.Progress == nil {
		return
	}
	now := time.Now()
	if !force && now.Sub(s.lastProgress) < s.cfg.ProgressInterval {
		return
	}
	s.lastProgress = now
	p := Progress{Phase: s.curPhase, BytesDone: s.serverBytes, TotalBytes: s.total,
		Elapsed: now.Sub(s.start)}
	if s.wv != nil {
		p.WALSegments = s.wv.walSegments
	}
	if s.tw != nil {
		p.BytesWritten = s.tw.Written()
	}
	if s.ring != nil {
		st := s.ring.Stats()
		p.RingOccupancy, p.RingCapacity = st.Occupied, st.Capacity
	}
	if p.TotalBytes > 0 && p.BytesDone > p.TotalBytes {
		p.TotalBytes = p.BytesDone
	}
	s.cfg.Progress(p)
}

func sortTimelines(t []uint32) {
	for i := 1; i < len(t); i++ {
		for j := i; j > 0 && t[j] < t[j-1]; j-- {
			t[j], t[j-1] = t[j-1], t[j]
		}
	}
}
