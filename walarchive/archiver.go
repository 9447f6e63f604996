package walarchive

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/walweave/walweave/internal/pgrepl"
	"github.com/walweave/walweave/pgformat"
	"github.com/walweave/walweave/ringbuf"
	"github.com/walweave/walweave/walstream"
)

// Defaults of Config.
const (
	DefaultRetryFor  = 10 * time.Minute
	DefaultRetryMin  = time.Second
	DefaultRetryMax  = 30 * time.Second
	DefaultRingSlots = 8
	// DefaultStatusInterval is the archiver's status update cadence: each makes the partial
	// file durable and reports it, so that the slot and the flush lag trail the server by
	// about this much.
	DefaultStatusInterval = time.Second
)

// Config configures an Archiver.
type Config struct {
	// ConnString is the connection string (keyword/value or URL; PG* variables and the
	// password file apply). The connection is a physical replication connection with
	// application_name "walweave" unless it sets one.
	ConnString string
	// ConnConfig, when set, is used instead of ConnString (walstream.ParseConfig's result, with
	// changes of the caller's).
	ConnConfig *pgconn.Config
	// Slot is the permanent physical replication slot to stream through. Required.
	Slot string
	// CreateSlot creates the slot (reserving WAL at once) when it does not exist.
	CreateSlot bool
	// Sink stores the archive. Required.
	Sink Sink
	// Compression applies to complete segments.
	Compression Compression
	// Synchronous (with a PartialSink) makes the partial segment durable before each flush
	// report, which is then sent at once, so that the archiver can be a synchronous standby
	// (synchronous_standby_names).
	Synchronous bool
	// RetryFor is how long a failing Store is retried before Run gives up (0: 10 minutes).
	RetryFor time.Duration
	// RetryMin and RetryMax bound the backoff between attempts to store, and between
	// reconnections (0: 1s and 30s).
	RetryMin, RetryMax time.Duration
	// RingSlots is how many complete segments may wait for the sink (0: 8).
	RingSlots int
	// StatusInterval and ProgressTimeout are the receiver's (walstream.Config); the status
	// interval is 1s when 0.
	StatusInterval, ProgressTimeout time.Duration
	// Logger receives the archiver's and the receiver's records; nil logs nothing.
	Logger *slog.Logger
}

// Status is a snapshot of an Archiver's state.
type Status struct {
	LastSegment  string       `json:"last_segment"`  // the last complete segment stored (file name)
	FlushLSN     pgformat.LSN `json:"flush_lsn"`     // the position reported as flushed (durable)
	ServerLSN    pgformat.LSN `json:"server_lsn"`    // the server's end of WAL, last heard
	LagBytes     int64        `json:"lag_bytes"`     // ServerLSN - FlushLSN
	Timeline     uint32       `json:"timeline"`      // the timeline streamed
	Segments     int64        `json:"segments"`      // complete segments stored since Run started
	HistoryFiles int64        `json:"history_files"` // history files stored since Run started
	WALBytes     int64        `json:"wal_bytes"`     // WAL bytes in those segments
	StoredBytes  int64        `json:"stored_bytes"`  // bytes handed to the sink (compressed)
	Reconnects   int64        `json:"reconnects"`    // connections lost and made again
	Connected    bool         `json:"connected"`     // streaming now
	LastError    string       `json:"last_error"`    // the last error (kept after recovering)
	LastErrorAt  time.Time    `json:"last_error_at"` // when it happened
	LastSuccess  time.Time    `json:"last_success"`  // when the sink last stored a file
	StoreRetries int64        `json:"store_retries"` // failed Store attempts that were retried
	SinkFailing  bool         `json:"sink_failing"`  // a Store is being retried now
	PartialError string       `json:"partial_error,omitempty"`
}

// SinkError is returned by Run when the sink kept failing for Config.RetryFor.
type SinkError struct {
	Name  string        // the file that could not be stored
	For   time.Duration // how long it was retried
	Tries int
	Err   error // the last attempt's error
}

func (e *SinkError) Error() string {
	return fmt.Sprintf("walarchive: the sink could not store %s (%d attempts over %s; the replication slot keeps the WAL from there): %v", e.Name, e.Tries, e.For.Round(time.Second), e.Err)
}

func (e *SinkError) Unwrap() error { return e.Err }

// Archiver streams WAL through a permanent physical replication slot into a Sink, for as long as
// Run runs.
type Archiver struct {
	cfg     Config
	log     *slog.Logger
	partial PartialSink

	mu        sync.Mutex
	st        Status
	stored    pgformat.LSN // end of the last complete segment stored (or the start)
	storedTLI uint32
	pstart    pgformat.LSN // segment of the synced partial data
	psynced   pgformat.LSN // end of the synced partial data
	// the segment before the partial one, and how far it was synced
	pprevStart, pprevSynced pgformat.LSN
	pwritten                pgformat.LSN // end of the partial data written
	// a segment whose partial file failed to be written (not written further)
	pbroken    pgformat.LSN
	pbrokenTLI uint32
	pbegan     string          // the partial file this session wrote from offset 0
	pfull      map[string]bool // segments whose partial file holds the whole segment
	rcv        *walstream.Receiver
	sysID      string
	running    bool
}

// New checks cfg and returns an Archiver.
func New(cfg Config) (*Archiver, error) {
	if cfg.ConnConfig == nil {
		cc, err := pgrepl.ParseConfig(cfg.ConnString)
		if err != nil {
			return nil, fmt.Errorf("walarchive: connection string: %w", err)
		}
		cfg.ConnConfig = cc
	}
	switch {
	case cfg.Slot == "":
		return nil, errors.New("walarchive: a replication slot name is required (Config.Slot)")
	case cfg.Sink == nil:
		return nil, errors.New("walarchive: Config.Sink is nil")
	}
	a := &Archiver{cfg: cfg, log: cfg.Logger}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	a.partial, _ = cfg.Sink.(PartialSink)
	if cfg.Synchronous && a.partial == nil {
		return nil, errors.New("walarchive: Synchronous needs a sink that keeps the partial segment (a directory)")
	}
	if a.cfg.RetryFor <= 0 {
		a.cfg.RetryFor = DefaultRetryFor
	}
	if a.cfg.RetryMin <= 0 {
		a.cfg.RetryMin = DefaultRetryMin
	}
	if a.cfg.RetryMax <= 0 {
		a.cfg.RetryMax = DefaultRetryMax
	}
	a.cfg.RetryMax = max(a.cfg.RetryMax, a.cfg.RetryMin)
	if a.cfg.StatusInterval <= 0 {
		a.cfg.StatusInterval = DefaultStatusInterval
	}
	if a.cfg.RingSlots <= 0 {
		a.cfg.RingSlots = DefaultRingSlots
	}
	if _, err := newCompressor(cfg.Compression); err != nil {
		return nil, err
	}
	return a, nil
}

// Status returns a snapshot of the archiver's state. It is safe to call at any time.
func (a *Archiver) Status() Status {
	a.mu.Lock()
	s := a.st
	s.FlushLSN = a.flushedLocked()
	rcv := a.rcv
	a.mu.Unlock()
	if rcv != nil {
		if end := rcv.ServerWALEnd(); end > s.ServerLSN {
			s.ServerLSN = end
		}
	}
	if s.ServerLSN > s.FlushLSN {
		s.LagBytes = int64(s.ServerLSN - s.FlushLSN)
	}
	return s
}

// fatalError marks an error that reconnecting does not cure.
type fatalError struct{ err error }

func (e *fatalError) Error() string { return e.err.Error() }
func (e *fatalError) Unwrap() error { return e.err }

// Run streams until ctx ends (then it returns nil, after storing nothing more than what was
// complete and leaving the partial segment written) or a failure that reconnecting does not
// cure: a sink that keeps failing (*SinkError), a missing slot without CreateSlot, WAL the
// server no longer has, authentication, a different cluster. A lost connection, a server
// restart or shutdown, a network failure are logged and followed by a reconnection with
// backoff. Run may be called once at a time.
func (a *Archiver) Run(ctx context.Context) error {
	a.mu.Lock()
	if a.running {
		a.mu.Unlock()
		return errors.New("walarchive: Run is already running")
	}
	a.running = true
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		a.running = false
		a.mu.Unlock()
	}()
	delay := a.cfg.RetryMin
	for {
		progressed, err := a.session(ctx)
		if ctx.Err() != nil {
			a.log.Info("WAL archiver stopped", "flush_lsn", a.flushed())
			return nil
		}
		var fe *fatalError
		if errors.As(err, &fe) {
			a.setError(fe.err)
			return fe.err
		}
		if err == nil {
			err = errors.New("walarchive: the WAL stream ended")
		}
		if !permanent(err) {
			if progressed {
				delay = a.cfg.RetryMin
			}
			a.setError(err)
			a.mu.Lock()
			a.st.Reconnects++
			a.mu.Unlock()
			a.log.Warn("WAL streaming interrupted; reconnecting", "in", delay, "err", err)
			t := time.NewTimer(delay)
			select {
			case <-ctx.Done():
				t.Stop()
				a.log.Info("WAL archiver stopped", "flush_lsn", a.flushed())
				return nil
			case <-t.C:
			}
			delay = min(2*delay, a.cfg.RetryMax)
			continue
		}
		a.setError(err)
		return err
	}
}

// permanent says whether a server error is one a reconnection does not cure (by SQLSTATE).
func permanent(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	switch pgErr.Code[:2] {
	case "28", "3D", "42": // authentication, no such database, undefined object / privilege
		return true
	}
	switch pgErr.Code {
	case "58P01", // requested WAL segment has already been removed
		"55000": // object not in prerequisite state (slot invalidated, wal_level)
		return true
	}
	return false
}

func (a *Archiver) setError(err error) {
	a.mu.Lock()
	a.st.LastError, a.st.LastErrorAt = err.Error(), time.Now()
	a.mu.Unlock()
}

func (a *Archiver) flushed() pgformat.LSN {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.flushedLocked()
}

// flushedLocked is what is durably stored: complete segments, and with Synchronous the synced
// partial data of the segment that follows them.
func (a *Archiver) flushedLocked() pgformat.LSN {
	f := a.stored
	// The segment before the partial one (complete, being stored) as far as it was synced,
	// then the partial one.
	if a.pprevSynced > f && a.pprevStart <= f {
		f = a.pprevSynced
	}
	if a.psynced > f && a.pstart <= f {
		f = a.psynced
	}
	return f
}

// session runs one connection. progressed says whether it stored anything.
func (a *Archiver) session(ctx context.Context) (progressed bool, err error) {
	rcv, err := walstream.Connect(ctx, walstream.Config{
		ConnConfig:      a.cfg.ConnConfig,
		SlotName:        a.cfg.Slot,
		StatusInterval:  a.cfg.StatusInterval,
		ProgressTimeout: a.cfg.ProgressTimeout,
		Logger:          a.cfg.Logger,
		Archive:         &walstream.ArchiveHooks{Flushed: a.flushed, Received: a.received, Sync: a.sync, Unbatched: a.cfg.Synchronous},
	})
	if err != nil {
		return false, err
	}
	defer rcv.Close()
	a.mu.Lock()
	if a.sysID != "" && a.sysID != rcv.SystemID() {
		a.mu.Unlock()
		return false, &fatalError{fmt.Errorf("walarchive: the server's system identifier is now %s, it was %s: the connection reaches another cluster", rcv.SystemID(), a.sysID)}
	}
	a.sysID = rcv.SystemID()
	a.mu.Unlock()
	segSize := rcv.SegmentSize()
	typ, restart, restartTLI, err := rcv.ReadSlot(ctx)
	if err != nil {
		return false, err
	}
	if typ == "" && a.cfg.CreateSlot {
		existed, err := rcv.CreateSlot(ctx)
		if err != nil {
			return false, err
		}
		if !existed {
			a.log.Info("replication slot created", "slot", a.cfg.Slot)
		}
		if typ, restart, restartTLI, err = rcv.ReadSlot(ctx); err != nil {
			return false, err
		}
	}
	switch typ {
	case "physical":
	case "":
		return false, &fatalError{fmt.Errorf("walarchive: replication slot %q does not exist; create it (walweave wal stream --create-slot, or SELECT pg_create_physical_replication_slot('%s', true))", a.cfg.Slot, a.cfg.Slot)}
	default:
		return false, &fatalError{fmt.Errorf("walarchive: replication slot %q is a %s slot; the archiver needs a physical one", a.cfg.Slot, typ)}
	}
	start, tli, from, err := a.startPoint(ctx, rcv, restart, restartTLI)
	if err != nil {
		return false, err
	}
	if tli != 0 && tli < rcv.Timeline() {
		if start, tli, err = a.followServerHistory(ctx, rcv, start, tli); err != nil {
			return false, err
		}
	}
	a.log.Info("archiving WAL", "slot", a.cfg.Slot, "start_lsn", start, "timeline", tli, "from", from)
	a.mu.Lock()
	a.stored = start
	a.storedTLI = tli
	a.pstart, a.psynced, a.pwritten, a.pprevStart, a.pprevSynced = 0, 0, 0, 0, 0
	a.pbegan, a.pfull = "", nil
	a.rcv = rcv
	a.st.Connected = true
	a.st.Timeline = tli
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		a.rcv = nil
		a.st.Connected = false
		a.mu.Unlock()
	}()

	ring := ringbuf.New(a.cfg.RingSlots)
	sctx, scancel := context.WithCancel(ctx)
	defer scancel()
	done := make(chan consumed, 1)
	go func() { done <- a.consume(ctx, ring, rcv, scancel, segSize) }()
	serr := rcv.Stream(sctx, ring, start, tli, "")
	res := <-done
	if a.partial != nil {
		if err := a.partial.ClosePartial(); err != nil {
			a.log.Warn("closing the partial segment failed", "err", err)
		}
	}
	if res.err != nil {
		return res.stored > 0, &fatalError{res.err}
	}
	return res.stored > 0, serr
}

// startPoint is where streaming starts: after what this Run stored; else after the newest
// complete segment of a Lister sink; else the slot's restart_lsn; else the server's position.
func (a *Archiver) startPoint(ctx context.Context, rcv *walstream.Receiver, restart pgformat.LSN, restartTLI uint32) (pgformat.LSN, uint32, string, error) {
	segSize := rcv.SegmentSize()
	a.mu.Lock()
	stored, tli := a.stored, a.storedTLI
	a.mu.Unlock()
	if stored != 0 {
		return stored.SegmentStart(segSize), tli, "this run's last stored segment", nil
	}
	if l, ok := a.cfg.Sink.(Lister); ok {
		names, err := l.List(ctx)
		if err != nil {
			return 0, 0, "", &fatalError{err}
		}
		if f, segno, ok := newestSegment(names, segSize); ok {
			if err := a.checkArchiveCluster(ctx, f.Base, rcv.SystemID()); err != nil {
				return 0, 0, "", err
			}
			return pgformat.LSN((segno + 1) * uint64(segSize)), f.Timeline, "the archive's newest segment " + f.Base, nil
		}
	}
	if restart != 0 {
		if restartTLI == 0 {
			restartTLI = rcv.Timeline()
		}
		return restart.SegmentStart(segSize), restartTLI, "the slot's restart_lsn", nil
	}
	return rcv.XLogPos().SegmentStart(segSize), rcv.Timeline(), "the server's current position", nil
}

// checkArchiveCluster refuses to add this server's WAL to an archive of another cluster (a
// re-initialised or upgraded one, or a wrong directory): it reads the system identifier from
// the long page header of the archive's newest segment, when the sink can be read back (it is
// a Source, as DirSink is). A sink that cannot be read is not checked.
func (a *Archiver) checkArchiveCluster(ctx context.Context, segment, serverID string) error {
	src, ok := a.cfg.Sink.(Source)
	if !ok {
		return nil
	}
	stored, err := src.Fetch(ctx, segment)
	if err != nil {
		return err // retried: the archive may be briefly unreadable
	}
	data, err := decode(stored, maxFile)
	if err != nil {
		return &fatalError{fmt.Errorf("walarchive: the archive's newest segment %s: %w", segment, err)}
	}
	id, ok := segmentSystemID(data)
	if !ok {
		return &fatalError{fmt.Errorf("walarchive: the archive's newest segment %s does not start with a WAL long page header: it is damaged or not a WAL segment; check it with walweave wal verify", segment)}
	}
	if strconv.FormatUint(id, 10) != serverID {
		return &fatalError{fmt.Errorf("walarchive: %w: its newest segment %s is of the cluster with system identifier %d, the server's is %s (a re-initialised or upgraded cluster, or the wrong archive); archive this server into a new, empty archive and keep this one for the backups of the cluster it belongs to", ErrOtherCluster, segment, id, serverID)}
	}
	return nil
}

// segmentSystemID reads the system identifier from a WAL segment's first page, a long page
// header (xlp_info has XLP_LONG_HEADER; xlp_sysid follows the 24-byte short header).
func segmentSystemID(seg []byte) (uint64, bool) {
	const xlpLongHeader = 0x0002
	if len(seg) < 32 || binary.LittleEndian.Uint16(seg[2:4])&xlpLongHeader == 0 {
		return 0, false
	}
	return binary.LittleEndian.Uint64(seg[24:32]), true
}

// newestSegment finds the newest complete segment: the one with the highest number on the
// highest timeline. After a failover the archive may hold segments of the old timeline with
// higher numbers than the new timeline's (WAL the old primary wrote past the fork, which the
// new timeline abandoned): the archive goes on with the new timeline.
func newestSegment(names []string, segSize int) (FileName, uint64, bool) {
	var best FileName
	var bestNo uint64
	found := false
	for _, n := range names {
		f, ok := ParseFileName(n)
		if !ok || f.Kind != KindSegment {
			continue
		}
		no, ok := f.SegNo(segSize)
		if !ok {
			continue
		}
		if !found || f.Timeline > best.Timeline || (f.Timeline == best.Timeline && no > bestNo) {
			best, bestNo, found = f, no, true
		}
	}
	return best, bestNo, found
}

// followServerHistory is where to start when the start timeline tli is older than the server's:
// after a failover to a standby that had not received all of the old primary's WAL, the archive
// (or this run) may have stored WAL of tli past the point where the server's timeline forked
// from it, and the server refuses to stream tli from there. The server's timeline history says
// where tli ended on its branch and which timeline followed: streaming starts again at the
// segment of that fork on the following timeline (its segment files have other names: nothing
// stored is overwritten). A tli that is not in the server's history ends Run.
func (a *Archiver) followServerHistory(ctx context.Context, rcv *walstream.Receiver, start pgformat.LSN, tli uint32) (pgformat.LSN, uint32, error) {
	serverTLI, segSize := rcv.Timeline(), rcv.SegmentSize()
	name, content, err := rcv.TimelineHistory(ctx, serverTLI)
	if err != nil {
		return 0, 0, err
	}
	hist, err := pgformat.ParseHistory(content)
	if err != nil {
		return 0, 0, &fatalError{fmt.Errorf("walarchive: the server's timeline history %s: %w", name, err)}
	}
	f, err := forkStart(start, tli, serverTLI, hist, segSize)
	if err != nil {
		return 0, 0, &fatalError{err}
	}
	if f.tli == tli {
		return start, tli, nil // tli goes on past start on the server's branch
	}
	first, last := pgformat.WALFileName(tli, f.end, segSize), pgformat.WALFileName(tli, start-1, segSize)
	a.log.Warn(fmt.Sprintf("the archive holds WAL of timeline %d past %s, where the server's timeline %d forked from it: "+
		"segments %s to %s (the part past %s) are of a branch the server's history abandoned, written by the old primary after the fork; "+
		"recovery to the latest timeline does not use them. Archiving goes on with timeline %d from %s",
		tli, f.end, f.tli, first, last, f.end, f.tli, f.start),
		"timeline", tli, "fork_lsn", f.end, "abandoned_from", first, "abandoned_through", last,
		"next_timeline", f.tli, "start_lsn", f.start, "server_timeline", serverTLI)
	return f.start, f.tli, nil
}

// forkDecision is forkStart's result.
type forkDecision struct {
	start pgformat.LSN // where to stream from
	tli   uint32       // on this timeline
	end   pgformat.LSN // where the start timeline ends on the server's branch
}

// forkStart decides where to stream from, starting at start on timeline tli, from a server on
// timeline serverTLI (above tli) whose history file holds hist: tli's entry gives the LSN where
// tli ended on the server's branch and the next entry (or serverTLI) the timeline that
// followed. A start up to that LSN stays (the server streams tli up to its end, then switches);
// a start past it moves to the start of the segment of that LSN on the following timeline. tli
// missing from the history is an error wrapping walstream.ErrTimelineNotInHistory.
func forkStart(start pgformat.LSN, tli, serverTLI uint32, hist []pgformat.HistoryEntry, segSize int) (forkDecision, error) {
	for i, e := range hist {
		if e.Timeline != tli {
			continue
		}
		next := serverTLI
		if i+1 < len(hist) {
			next = hist[i+1].Timeline
		}
		if start <= e.SwitchLSN {
			return forkDecision{start: start, tli: tli, end: e.SwitchLSN}, nil
		}
		return forkDecision{start: e.SwitchLSN.SegmentStart(segSize), tli: next, end: e.SwitchLSN}, nil
	}
	var tlis []string
	for _, e := range hist {
		tlis = append(tlis, fmt.Sprint(e.Timeline))
	}
	return forkDecision{}, fmt.Errorf("walarchive: the archive goes on with timeline %d at %s, but the server is on timeline %d, "+
		"which descends from timelines [%s], not from %d: %w; the archive holds WAL of another branch of the cluster's history, or of "+
		"another cluster. Archive this server into a new, empty archive (another directory or prefix), and keep this one for the "+
		"backups that need it", tli, start, serverTLI, strings.Join(tlis, " "), tli, walstream.ErrTimelineNotInHistory)
}

// received is the receiver's hook: the new bytes go to the partial file.
func (a *Archiver) received(tli uint32, segStart pgformat.LSN, seg []byte, from, to int) (bool, error) {
	if a.partial == nil {
		return false, nil
	}
	a.mu.Lock()
	broken := a.pbroken == segStart && a.pbrokenTLI == tli
	a.mu.Unlock()
	if broken {
		return false, nil // the partial file of this segment has a hole: not written further
	}
	name := pgformat.WALFileName(tli, segStart, len(seg))
	err := a.partial.WritePartial(name, int64(from), seg[from:to])
	if err == nil && a.cfg.Synchronous {
		err = a.partial.SyncPartial()
	}
	if err != nil {
		if a.cfg.Synchronous {
			return false, err
		}
		// The complete segment still goes through Store (with its retries); the partial file
		// is a convenience without Synchronous.
		a.mu.Lock()
		first := a.st.PartialError == ""
		a.st.PartialError = err.Error()
		a.pbroken, a.pbrokenTLI = segStart, tli
		a.mu.Unlock()
		if first {
			a.log.Warn("writing the partial segment failed", "err", err)
		}
		return false, nil
	}
	a.mu.Lock()
	if from == 0 {
		a.pbegan = name
		if segStart != a.pstart {
			a.pprevStart, a.pprevSynced = a.pstart, a.psynced
		}
	}
	if to == len(seg) && a.pbegan == name && a.cfg.Compression.Algorithm == None {
		if a.pfull == nil {
			a.pfull = map[string]bool{}
		}
		a.pfull[name] = true
	}
	a.pstart, a.pwritten = segStart, segStart+pgformat.LSN(to)
	if a.cfg.Synchronous {
		a.psynced = a.pwritten
	}
	// A burst of WAL (full-page writes after a checkpoint) is made durable and reported every
	// syncEvery bytes rather than only once a status interval.
	burst := !a.cfg.Synchronous && a.pwritten-max(a.psynced, segStart) >= syncEvery
	a.mu.Unlock()
	if burst {
		if err := a.partial.SyncPartial(); err != nil {
			a.log.Warn("syncing the partial segment failed", "err", err)
			return false, nil
		}
		a.mu.Lock()
		a.psynced = a.pwritten
		a.mu.Unlock()
		return true, nil
	}
	return a.cfg.Synchronous, nil
}

// syncEvery bounds the partial data written and not yet made durable and reported.
const syncEvery = 4 << 20

// sync is the receiver's hook before it answers a keepalive that asks for a reply (the server
// shutting down waits for our flush position): the partial file is made durable; a sink
// without one asks for a reply without a flush position.
func (a *Archiver) sync() (bool, error) {
	if a.partial == nil {
		return true, nil
	}
	a.mu.Lock()
	pending := a.pwritten > a.psynced
	a.mu.Unlock()
	if !pending {
		return false, nil
	}
	if err := a.partial.SyncPartial(); err != nil {
		if a.cfg.Synchronous {
			return false, err
		}
		a.log.Warn("syncing the partial segment failed", "err", err)
		return true, nil
	}
	a.mu.Lock()
	a.psynced = a.pwritten
	a.mu.Unlock()
	return false, nil
}

type consumed struct {
	stored int
	err    error // the sink failed for good
}

// consume stores what the ring delivers until the ring ends.
func (a *Archiver) consume(ctx context.Context, ring *ringbuf.Ring, rcv *walstream.Receiver, stop context.CancelFunc, segSize int) (res consumed) {
	comp, err := newCompressor(a.cfg.Compression)
	if err != nil {
		ring.Abort(err)
		stop()
		return consumed{err: err}
	}
	defer comp.close()
	for {
		seg, err := ring.Take(ctx)
		if err != nil {
			if !errors.Is(err, io.EOF) && ctx.Err() == nil {
				a.log.Debug("WAL stream ended", "err", err)
			}
			return res
		}
		name, data := seg.Name, seg.Data
		if seg.Kind == ringbuf.KindSegment {
			if data, err = comp.compress(seg.Data); err != nil {
				ring.Release(seg)
				ring.Abort(err)
				stop()
				return consumed{stored: res.stored, err: err}
			}
			name += a.cfg.Compression.Suffix()
		}
		stored := false
		if seg.Kind == ringbuf.KindSegment && a.partial != nil {
			a.mu.Lock()
			full := a.pfull[seg.Name]
			delete(a.pfull, seg.Name)
			a.mu.Unlock()
			if full {
				// The partial file is the segment: rename it rather than write it again.
				if err := a.partial.CompletePartial(seg.Name); err != nil {
					a.log.Warn("completing the partial segment failed; storing the segment", "file", seg.Name, "err", err)
				} else {
					stored = true
				}
			}
		}
		if !stored {
			if err := a.store(ctx, name, data); err != nil {
				ring.Release(seg)
				if ctx.Err() != nil {
					return res
				}
				ring.Abort(err)
				stop()
				return consumed{stored: res.stored, err: err}
			}
		}
		res.stored++
		now := time.Now()
		a.mu.Lock()
		a.st.LastSuccess = now
		a.st.StoredBytes += int64(len(data))
		if seg.Kind == ringbuf.KindSegment {
			a.stored = pgformat.LSN(seg.StartLSN) + pgformat.LSN(len(seg.Data))
			a.storedTLI = seg.Timeline
			a.st.LastSegment, a.st.Timeline = name, seg.Timeline
			a.st.Segments++
			a.st.WALBytes += int64(len(seg.Data))
		} else {
			a.st.HistoryFiles++
		}
		a.mu.Unlock()
		a.log.Debug("stored", "file", name, "bytes", len(data))
		if seg.Kind == ringbuf.KindSegment {
			if a.partial != nil && !stored {
				if err := a.partial.RemovePartial(seg.Name); err != nil {
					a.log.Warn("removing a partial segment failed", "err", err)
				}
			}
			rcv.ReportSoon()
		}
		ring.Release(seg)
	}
}

// store calls the sink, retrying with backoff for up to RetryFor.
func (a *Archiver) store(ctx context.Context, name string, data []byte) error {
	var first time.Time
	delay := a.cfg.RetryMin
	for tries := 1; ; tries++ {
		err := a.cfg.Sink.Store(ctx, name, data)
		if err == nil {
			if !first.IsZero() {
				a.log.Info("stored after retrying", "file", name, "attempts", tries)
				a.mu.Lock()
				a.st.SinkFailing = false
				a.mu.Unlock()
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		now := time.Now()
		if first.IsZero() {
			first = now
		}
		a.setError(err)
		if now.Sub(first) >= a.cfg.RetryFor {
			return &SinkError{Name: name, For: now.Sub(first), Tries: tries, Err: err}
		}
		a.mu.Lock()
		a.st.StoreRetries++
		a.st.SinkFailing = true
		a.mu.Unlock()
		a.log.Warn("storing failed; retrying", "file", name, "in", delay, "err", err)
		t := time.NewTimer(min(delay, max(time.Until(first.Add(a.cfg.RetryFor)), time.Millisecond)))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		delay = min(2*delay, a.cfg.RetryMax)
	}
}
