package walstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/walweave/walweave/internal/pgerr"
	"github.com/walweave/walweave/internal/pgrepl"
	"github.com/walweave/walweave/pgformat"
	"github.com/walweave/walweave/ringbuf"
)

// DefaultStatusInterval is the standby status update cadence when Config.StatusInterval is 0.
const DefaultStatusInterval = 10 * time.Second

// minStatusCap is the floor of the wal_sender_timeout/3 cap on the status interval.
const minStatusCap = 100 * time.Millisecond

// drainTimeout bounds the wait for the server's end of streaming after the client's CopyDone.
const drainTimeout = time.Minute

// While streaming, the receiver reads its socket through a pgrepl.BatchedConn (the same reader
// as the base backup's connection) with SO_RCVLOWAT at walLowWater, so that the kernel wakes it
// once that much WAL is queued rather than for every small XLogData message a walsender sends
// after each commit's flush (under pgbench load on 2 cores that was 10-30k context switches per
// backup); each wait is bounded by walBatchWait to take what is below the mark. WAL arrives at
// most walBatchWait later; nothing waits on it but the end of the backup, and batching stops
// once the end position is known. The receiver's own read deadline (the next status update)
// stays its own: the BatchedConn returns its timeout as an unbatched socket would.
const (
	walLowWater  = 256 << 10
	walBatchWait = 50 * time.Millisecond
	// archiveBatchWait is the batch wait of an archiver (ArchiveHooks): a long-running stream,
	// mostly idle, that the 50 ms waits would wake 20 times a second for nothing.
	archiveBatchWait = 500 * time.Millisecond
)

// Config configures a Receiver.
type Config struct {
	// ConnConfig is the connection configuration, normally from ParseConfig. Connect
	// works on a copy and makes it a physical replication connection.
	ConnConfig *pgconn.Config
	// SlotName is "" to use a temporary slot made by PrepareSlot, or the name of an existing
	// permanent physical replication slot.
	SlotName string
	// StatusInterval is the cadence of standby status updates; 0 means 10s. It is capped at a
	// third of the server's wal_sender_timeout (but not below 100ms) unless that is 0.
	StatusInterval time.Duration
	// Logger receives the receiver's log records; nil logs nothing.
	Logger *slog.Logger
	// ProgressTimeout fails streaming when the server sends nothing, not even the keepalive
	// the receiver asks for, for that long (a stopped walsender, a proxy that holds the
	// connection); the status interval is capped at a third of it. 0 means
	// DefaultProgressTimeout; negative turns it off, and the receiver then gives up
	// after twice the server's wal_sender_timeout of silence (never, if that is 0). Watch uses
	// it as the probe's reply timeout.
	ProgressTimeout time.Duration
	// Archive, when set, makes the receiver serve a continuous WAL archiver: see ArchiveHooks.
	Archive *ArchiveHooks

	// disableBlockedStatus turns off the status updates sent while Push is blocked (tests
	// only: it proves that they are what keeps the walsender alive).
	disableBlockedStatus bool
}

// Stats are a Receiver's counters.
type Stats struct {
	ReceivedBytes        int64         // WAL bytes received in XLogData messages
	Messages             int64         // XLogData messages received
	Keepalives           int64         // primary keepalive messages received
	Segments             int64         // WAL segments handed to the ring (complete or padded)
	HistoryFiles         int64         // timeline history files handed to the ring
	StatusUpdates        int64         // standby status updates sent
	BlockedStatusUpdates int64         // of those, sent while the ring was full
	Blocked              time.Duration // time spent waiting for room in the ring
	Blocks               int64         // how many hand-overs had to wait for room
	ReadTimeouts         int64         // reads cut short by the status-update deadline or SetEnd
	Timelines            []uint32      // timelines streamed, in order
	WritePos             pgformat.LSN  // received position (last status update's write)
	FlushPos             pgformat.LSN  // end of the WAL handed to the ring
}

// Receiver streams WAL from one replication connection into a ring of segments. Its methods
// other than SetEnd, Stats and Close must be called from one goroutine.
type Receiver struct {
	cfg            Config
	log            *slog.Logger
	conn           *pgconn.PgConn
	batched        *pgrepl.BatchedConn // the socket under conn (and under TLS)
	sys            pgrepl.IdentifySystemResult
	segSize        int
	version        int
	senderTimeout  time.Duration
	statusInterval time.Duration

	slot         string
	tempSlot     bool
	slotPrepared bool

	// end position, set once by SetEnd
	endMu  sync.Mutex
	endSet atomic.Bool
	endLSN pgformat.LSN
	endTLI uint32

	// kickOn says whether SetEnd may interrupt a read by moving the read deadline.
	kickMu sync.Mutex
	kickOn bool

	mu           sync.Mutex
	closed       bool
	streamed     bool
	streaming    bool
	streamCancel context.CancelFunc
	streamDone   chan struct{}
	ring         *ringbuf.Ring
	timelines    []uint32

	closeOnce sync.Once

	st struct {
		received, messages, keepalives, segments, history, status, blockedStatus, timeouts atomic.Int64
		probes                                                                             atomic.Int64 // Watch's IDENTIFY_SYSTEM probes answered
		write, flush                                                                       atomic.Uint64
		serverEnd                                                                          atomic.Uint64 // the server's end of WAL (last message)
	}
	statusDue    atomic.Bool // ReportSoon: send a status update at once
	invalidFlush bool        // the next status update reports no flush position (ArchiveHooks.Sync)

	// Stream goroutine state.
	tli        uint32
	received   pgformat.LSN // next byte expected (write position)
	flushed    pgformat.LSN // end of the WAL handed to the ring
	cur        []byte       // segment being filled; nil if none
	curStart   pgformat.LSN
	copyActive bool // the COPY of START_REPLICATION is running (status updates allowed)
	nextStatus time.Time
	statusBuf  []byte
	onWake     func() error
	blockedLog bool
	lastHeard  time.Time // when the server was last heard from (or we last started listening)
}

// Connect opens the replication connection, checks the server version (15+) and reads
// IDENTIFY_SYSTEM, wal_segment_size and wal_sender_timeout.
func Connect(ctx context.Context, cfg Config) (*Receiver, error) {
	if cfg.ConnConfig == nil {
		return nil, errors.New("walstream: Config.ConnConfig is nil (use walstream.ParseConfig)")
	}
	cc := cfg.ConnConfig.Copy()
	pgrepl.ConfigureReplication(cc)
	// The socket goes under a BatchedConn (the last one dialled is the connection's: pgconn may
	// try several hosts, or TLS then plain).
	var batched *pgrepl.BatchedConn
	after := cc.AfterNetConnect
	cc.AfterNetConnect = func(ctx context.Context, c *pgconn.Config, nc net.Conn) (net.Conn, error) {
		if after != nil {
			var err error
			if nc, err = after(ctx, c, nc); err != nil {
				return nil, err
			}
		}
		wait := walBatchWait
		if cfg.Archive != nil {
			wait = archiveBatchWait
		}
		batched = pgrepl.NewBatchedConnSize(nil, nc, walLowWater, wait)
		return batched, nil
	}
	conn, err := pgconn.ConnectConfig(ctx, cc)
	if err != nil {
		return nil, fmt.Errorf("walstream: connect for WAL streaming: %w", pgerr.On(pgerr.Replication, err))
	}
	r := &Receiver{cfg: cfg, conn: conn, batched: batched, log: cfg.Logger}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	r.onWake = r.wake
	r.statusBuf = make([]byte, 0, pgrepl.StandbyStatusLen)
	if err := r.setup(ctx); err != nil {
		_ = r.Close()
		return nil, err
	}
	return r, nil
}

func (r *Receiver) setup(ctx context.Context) error {
	r.version = pgrepl.ServerVersionNum(r.conn)
	if err := pgerr.CheckVersion(r.version, r.conn.ParameterStatus("server_version")); err != nil {
		return fmt.Errorf("walstream: %w", err)
	}
	var err error
	if r.sys, err = pgrepl.IdentifySystem(ctx, r.conn); err != nil {
		return fmt.Errorf("walstream: %w", err)
	}
	s, err := pgrepl.Show(ctx, r.conn, "wal_segment_size")
	if err != nil {
		return fmt.Errorf("walstream: %w", err)
	}
	if r.segSize, err = pgrepl.ParseWALSegmentSize(s); err != nil {
		return fmt.Errorf("walstream: %w", err)
	}
	s, err = pgrepl.Show(ctx, r.conn, "wal_sender_timeout")
	if err != nil {
		return fmt.Errorf("walstream: %w", err)
	}
	if r.senderTimeout, err = pgrepl.ParseDuration(s); err != nil {
		return fmt.Errorf("walstream: wal_sender_timeout: %w", err)
	}
	r.statusInterval = statusInterval(r.cfg.StatusInterval, r.senderTimeout)
	if p := r.progressTimeout(); p > 0 {
		r.statusInterval = min(r.statusInterval, max(p/3, minStatusCap))
	}
	r.log.Debug("WAL connection ready", "system_id", r.sys.SystemID, "timeline", r.sys.Timeline,
		"xlogpos", r.sys.XLogPos, "wal_segment_size", r.segSize, "wal_sender_timeout", r.senderTimeout,
		"status_interval", r.statusInterval, "server_version", r.version)
	return nil
}

// statusInterval applies the default and the wal_sender_timeout/3 cap.
func statusInterval(want, senderTimeout time.Duration) time.Duration {
	if want <= 0 {
		want = DefaultStatusInterval
	}
	if senderTimeout > 0 {
		limit := max(senderTimeout/3, minStatusCap)
		want = min(want, limit)
	}
	return want
}

// SystemID returns the system identifier IDENTIFY_SYSTEM reported.
func (r *Receiver) SystemID() string { return r.sys.SystemID }

// Timeline returns the server's timeline at connection time.
func (r *Receiver) Timeline() uint32 { return r.sys.Timeline }

// XLogPos returns the WAL flush position IDENTIFY_SYSTEM reported.
func (r *Receiver) XLogPos() pgformat.LSN { return r.sys.XLogPos }

// SegmentSize returns the server's wal_segment_size in bytes.
func (r *Receiver) SegmentSize() int { return r.segSize }

// ServerVersion returns the server's version number (e.g. 150018).
func (r *Receiver) ServerVersion() int { return r.version }

// WALSenderTimeout returns the server's wal_sender_timeout for this connection (0: disabled).
func (r *Receiver) WALSenderTimeout() time.Duration { return r.senderTimeout }

// StatusInterval returns the cadence of standby status updates in effect.
func (r *Receiver) StatusInterval() time.Duration { return r.statusInterval }

// SlotName returns the replication slot streaming uses: the temporary slot's name once
// PrepareSlot made it, or Config.SlotName.
func (r *Receiver) SlotName() string {
	if r.slot == "" {
		return r.cfg.SlotName
	}
	return r.slot
}

// PrepareSlot makes sure the WAL the backup needs stays on the server: with no
// Config.SlotName it creates a TEMPORARY PHYSICAL slot with RESERVE_WAL named
// "walweave_<backend pid>" (it goes away with the connection); otherwise it checks that the
// permanent slot exists, is physical and is not in use. Call it before BASE_BACKUP starts on
// the other connection.
func (r *Receiver) PrepareSlot(ctx context.Context) error {
	if r.slotPrepared {
		return nil
	}
	if r.cfg.SlotName == "" {
		name := "walweave_" + strconv.FormatUint(uint64(r.conn.PID()), 10)
		lsn, err := pgrepl.CreateTemporaryPhysicalSlot(ctx, r.conn, name)
		if err != nil {
			return fmt.Errorf("walstream: %w (a free replication slot is needed: raise max_replication_slots or drop an unused slot)", err)
		}
		r.slot, r.tempSlot, r.slotPrepared = name, true, true
		r.log.Info("temporary replication slot created", "slot", name, "restart_lsn", lsn)
		return nil
	}
	name := r.cfg.SlotName
	typ, restart, _, err := pgrepl.ReadReplicationSlot(ctx, r.conn, name)
	if err != nil {
		return fmt.Errorf("walstream: %w", err)
	}
	switch typ {
	case "":
		return fmt.Errorf("walstream: replication slot %q: %w; create it with SELECT pg_create_physical_replication_slot('%s', true), or stream through a temporary slot (no slot name)", name, ErrSlotMissing, name)
	case "physical":
	default:
		return fmt.Errorf("walstream: replication slot %q is a %s slot; WAL streaming needs a physical slot (SELECT pg_create_physical_replication_slot('%s', true)), or a temporary slot (no slot name)", name, typ, name)
	}
	// Whether another client uses the slot can only be seen by acquiring it: start streaming
	// through it and stop again at once.
	if err := pgrepl.StartReplication(ctx, r.conn, name, r.sys.XLogPos, r.sys.Timeline); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "55006" {
			return fmt.Errorf("walstream: replication slot %q: %w; stop that client or use another slot: %w", name, ErrSlotInUse, err)
		}
		return fmt.Errorf("walstream: check replication slot %q: %w", name, err)
	}
	if err := pgrepl.SendCopyDone(r.conn); err != nil {
		return fmt.Errorf("walstream: check replication slot %q: %w", name, err)
	}
	dctx, cancel := context.WithTimeout(ctx, drainTimeout)
	_, err = pgrepl.ReadStreamEnd(dctx, r.conn)
	cancel()
	if err != nil {
		return fmt.Errorf("walstream: check replication slot %q: %w", name, err)
	}
	if restart == 0 {
		r.log.Warn("replication slot has no restart_lsn: it does not hold back WAL until streaming through it starts (created without reserving WAL, or invalidated)", "slot", name)
	}
	r.slot, r.slotPrepared = name, true
	r.log.Info("using permanent replication slot", "slot", name, "restart_lsn", restart)
	return nil
}

// SetEnd tells the receiver the backup's end position: Stream stops once it has received WAL up
// to end. It is safe to call from any goroutine at any time; calls after the first are ignored.
func (r *Receiver) SetEnd(end pgformat.LSN, tli uint32) {
	r.endMu.Lock()
	if r.endSet.Load() {
		r.endMu.Unlock()
		return
	}
	r.endLSN, r.endTLI = end, tli
	r.endSet.Store(true)
	r.endMu.Unlock()
	r.log.Debug("end position set", "end_lsn", end, "timeline", tli)
	r.kick()
}

func (r *Receiver) end() (pgformat.LSN, uint32, bool) {
	if !r.endSet.Load() {
		return 0, 0, false
	}
	r.endMu.Lock()
	defer r.endMu.Unlock()
	return r.endLSN, r.endTLI, true
}

// kick interrupts a blocked read of the stream loop (it re-checks the end position).
func (r *Receiver) kick() {
	r.kickMu.Lock()
	if r.kickOn {
		_ = r.conn.Conn().SetReadDeadline(time.Now())
	}
	r.kickMu.Unlock()
}

func (r *Receiver) setKick(on bool) {
	r.kickMu.Lock()
	r.kickOn = on
	r.kickMu.Unlock()
}

// Stats returns a snapshot of the receiver's counters. It is safe to call at any time.
func (r *Receiver) Stats() Stats {
	s := Stats{
		ReceivedBytes:        r.st.received.Load(),
		Messages:             r.st.messages.Load(),
		Keepalives:           r.st.keepalives.Load(),
		Segments:             r.st.segments.Load(),
		HistoryFiles:         r.st.history.Load(),
		StatusUpdates:        r.st.status.Load(),
		BlockedStatusUpdates: r.st.blockedStatus.Load(),
		ReadTimeouts:         r.st.timeouts.Load(),
		WritePos:             pgformat.LSN(r.st.write.Load()),
		FlushPos:             pgformat.LSN(r.st.flush.Load()),
	}
	r.mu.Lock()
	ring := r.ring
	s.Timelines = append([]uint32(nil), r.timelines...)
	r.mu.Unlock()
	if ring != nil {
		rs := ring.Stats()
		s.Blocked, s.Blocks = rs.BlockedTime, rs.Blocks
	}
	return s
}

// Close closes the connection; a temporary slot goes with it. It stops a running Stream first
// (which then returns an error). Close is idempotent and safe after errors; it returns nil (a
// connection that cannot be closed cleanly is closed anyway).
func (r *Receiver) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	streaming, cancel, done := r.streaming, r.streamCancel, r.streamDone
	r.mu.Unlock()
	if streaming {
		cancel()
		<-done
	}
	r.closeConn()
	return nil
}

// closeConn closes the connection once; the server ends the walsender and drops a temporary
// slot when it sees the connection go.
func (r *Receiver) closeConn() {
	r.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = r.conn.Close(ctx)
	})
}

// Stream streams WAL from the segment start of start on timeline tli into ring until the end
// position given by SetEnd is reached, an error occurs or ctx ends. Each complete segment is
// pushed as ringbuf.KindSegment; the segment holding the last byte before the end position is
// pushed zero-padded after it. For a timeline above 1, and for each timeline the server
// switches to, the timeline's history file is pushed first as ringbuf.KindHistory.
//
// expectSystemID is the system identifier the base backup connection saw ("" skips the check).
// Stream always ends by calling ring.Close with its result (nil on success). It calls
// PrepareSlot if that was not done. It can be called once per Receiver; after an error the
// connection is closed.
func (r *Receiver) Stream(ctx context.Context, ring *ringbuf.Ring, start pgformat.LSN, tli uint32, expectSystemID string) (err error) {
	if ring == nil {
		return errors.New("walstream: Stream needs a ring")
	}
	defer func() { ring.Close(err) }()
	r.mu.Lock()
	switch {
	case r.closed:
		r.mu.Unlock()
		return errors.New("walstream: Stream called on a closed receiver")
	case r.streamed:
		r.mu.Unlock()
		return errors.New("walstream: Stream called twice")
	}
	r.streamed, r.streaming, r.ring = true, true, ring
	ctx, cancel := context.WithCancel(ctx)
	r.streamCancel, r.streamDone = cancel, make(chan struct{})
	r.mu.Unlock()
	defer func() {
		if err != nil {
			r.closeConn()
		}
		cancel()
		r.mu.Lock()
		r.streaming = false
		close(r.streamDone)
		r.mu.Unlock()
	}()

	if expectSystemID != "" && expectSystemID != r.sys.SystemID {
		return fmt.Errorf("walstream: system identifier does not match between the base backup connection (%s) and the WAL streaming connection (%s): they reach different clusters", expectSystemID, r.sys.SystemID)
	}
	if tli == 0 {
		tli = r.sys.Timeline
	}
	// Cancelling ctx interrupts any read or write on the connection at once.
	stop := context.AfterFunc(ctx, func() { _ = r.conn.Conn().SetDeadline(time.Now()) })
	defer stop()

	if err := r.PrepareSlot(ctx); err != nil {
		return r.ctxErr(ctx, err)
	}
	pos := start.SegmentStart(r.segSize)
	r.flushed = pos
	r.log.Info("streaming WAL", "start_lsn", pos, "timeline", tli, "slot", r.slot)
	if tli > 1 {
		if err := r.pushHistory(ctx, ring, tli); err != nil {
			return r.ctxErr(ctx, err)
		}
	}
	for {
		r.setTimeline(tli)
		sw, err := r.streamTimeline(ctx, ring, pos, tli)
		if err != nil {
			return r.ctxErr(ctx, err)
		}
		if sw == nil {
			r.log.Info("WAL streaming done", "write_lsn", r.received, "flush_lsn", r.flushed, "timeline", r.tli)
			return nil
		}
		r.log.Info("timeline switch", "from", tli, "to", sw.NextTLI, "at", sw.StartPos)
		if sw.NextTLI <= tli {
			return fmt.Errorf("walstream: the server switched from timeline %d to timeline %d, which is not newer", tli, sw.NextTLI)
		}
		tli, pos = sw.NextTLI, sw.StartPos.SegmentStart(r.segSize)
		if err := r.pushHistory(ctx, ring, tli); err != nil {
			return r.ctxErr(ctx, err)
		}
	}
}

// ctxErr prefers the cancellation over the error it caused.
func (r *Receiver) ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		r.mu.Lock()
		closed := r.closed
		r.mu.Unlock()
		if closed {
			return fmt.Errorf("walstream: WAL streaming stopped: the receiver was closed: %w", ctx.Err())
		}
		return fmt.Errorf("walstream: WAL streaming cancelled at %s on timeline %d: %w", r.received, r.tli, ctx.Err())
	}
	return err
}

func (r *Receiver) setTimeline(tli uint32) {
	r.tli = tli
	r.mu.Lock()
	if n := len(r.timelines); n == 0 || r.timelines[n-1] != tli {
		r.timelines = append(r.timelines, tli)
	}
	r.mu.Unlock()
}

// pushHistory fetches TIMELINE_HISTORY tli and pushes it.
func (r *Receiver) pushHistory(ctx context.Context, ring *ringbuf.Ring, tli uint32) error {
	name, content, err := r.TimelineHistory(ctx, tli)
	if err != nil {
		return err
	}
	seg := ring.NewSegment()
	seg.Kind, seg.Name, seg.Timeline, seg.StartLSN, seg.Data = ringbuf.KindHistory, name, tli, 0, content
	if err := ring.Push(ctx, seg, r.statusInterval, r.onWake); err != nil {
		ring.Release(seg)
		return r.pushError(name, err)
	}
	r.st.history.Add(1)
	r.log.Debug("history file handed over", "file", name, "bytes", len(content))
	return nil
}

func (r *Receiver) pushError(name string, err error) error {
	if errors.Is(err, ringbuf.ErrClosed) {
		return fmt.Errorf("walstream: hand over %s: the consumer stopped taking WAL: %w", name, err)
	}
	return fmt.Errorf("walstream: hand over %s: %w", name, err)
}

// streamTimeline runs one START_REPLICATION. It returns (nil, nil) when the end position was
// reached and the stream was ended cleanly, or the next timeline when the server ended the
// stream because tli ended.
func (r *Receiver) streamTimeline(ctx context.Context, ring *ringbuf.Ring, pos pgformat.LSN, tli uint32) (*pgrepl.TimelineSwitch, error) {
	r.received = pos
	r.st.write.Store(uint64(pos))
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := pgrepl.StartReplication(ctx, r.conn, r.slot, pos, tli); err != nil {
		var ended *pgrepl.TimelineEndedError
		if errors.As(err, &ended) {
			// Nothing to stream on tli from pos: go on with the next timeline.
			return &ended.Next, nil
		}
		return nil, r.startError(ctx, pos, tli, err)
	}
	r.copyActive = true
	r.lastHeard = time.Now()
	defer func() { r.copyActive = false }()
	r.setKick(true)
	kicking := true
	defer func() {
		if kicking {
			r.setKick(false)
		}
	}()
	netConn := r.conn.Conn()
	// Batched reading (see walLowWater): on until the end position is known.
	r.batched.Batch(r.cfg.Archive == nil || !r.cfg.Archive.Unbatched)
	unbatch := func() { r.batched.Batch(false) }
	defer unbatch()
	var deadline time.Time
	r.nextStatus = time.Time{} // a first status update at once
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		end, _, endKnown := r.end()
		if endKnown {
			unbatch()
			if r.received >= end {
				r.setKick(false)
				kicking = false
				return nil, r.finish(ctx, ring, end)
			}
		}
		now := time.Now()
		if periodic := !now.Before(r.nextStatus); periodic || r.statusDue.Swap(false) {
			if h := r.cfg.Archive; periodic && h != nil && h.Sync != nil {
				// An archive makes what it received durable once a status interval, so that
				// the flush position (and the slot) trails the server by at most that much.
				if _, err := h.Sync(); err != nil {
					return nil, err
				}
			}
			if err := r.sendStatus(now, false); err != nil {
				return nil, err
			}
		}
		if target := r.nextStatus; !deadline.Equal(target) {
			deadline = target
			if err := netConn.SetReadDeadline(deadline); err != nil {
				return nil, r.connError(err)
			}
			continue // re-check ctx and the end position after moving the deadline
		}
		msg, err := r.conn.ReceiveMessage(context.Background())
		if err != nil {
			if pgrepl.IsDeadline(err) {
				// The connection stays usable; a partly read message is resumed.
				r.st.timeouts.Add(1)
				deadline = time.Time{}
				if limit := r.silenceLimit(); limit > 0 {
					if silent := time.Since(r.lastHeard); silent > limit {
						return nil, fmt.Errorf("walstream: the server has sent nothing for %v at %s on timeline %d, although asked to reply (progress timeout %v, wal_sender_timeout=%s): the walsender hangs (stopped, or blocked on the server) or the network or a proxy holds the connection; run the backup again", silent.Round(time.Millisecond), r.received, tli, limit, r.senderTimeout)
					}
				}
				continue
			}
			return nil, r.connError(err)
		}
		r.lastHeard = now
		switch m := msg.(type) {
		case *pgproto3.CopyData:
			if len(m.Data) == 0 {
				return nil, errors.New("walstream: the server sent an empty CopyData message")
			}
			switch m.Data[0] {
			case pgrepl.XLogDataByte:
				x, err := pgrepl.ParseXLogData(m.Data)
				if err != nil {
					return nil, fmt.Errorf("walstream: %w", err)
				}
				r.st.serverEnd.Store(uint64(x.ServerWALEnd))
				if err := r.handleXLogData(ctx, ring, x.WALStart, x.Data); err != nil {
					return nil, err
				}
			case pgrepl.PrimaryKeepaliveByte:
				k, err := pgrepl.ParsePrimaryKeepalive(m.Data)
				if err != nil {
					return nil, fmt.Errorf("walstream: %w", err)
				}
				r.st.keepalives.Add(1)
				r.st.serverEnd.Store(uint64(k.ServerWALEnd))
				if k.ReplyRequested {
					if h := r.cfg.Archive; h != nil && h.Sync != nil {
						invalid, err := h.Sync()
						if err != nil {
							return nil, err
						}
						r.invalidFlush = invalid
					}
					if err := r.sendStatus(time.Now(), false); err != nil {
						return nil, err
					}
				}
			default:
				return nil, fmt.Errorf("walstream: the server sent a streaming message of unknown type %q", m.Data[0])
			}
		case *pgproto3.CopyDone:
			// The server ended the stream: the timeline ended in its history.
			unbatch()
			r.setKick(false)
			kicking = false
			return r.timelineEnded(ctx, ring, tli)
		case *pgproto3.CommandComplete:
			return nil, fmt.Errorf("walstream: the server ended WAL streaming at %s on timeline %d (%s): it is shutting down; run the backup again once it is back", r.received, tli, m.CommandTag)
		case *pgproto3.ErrorResponse:
			if r.received == pos {
				// Refused before any WAL came (a start ahead of the server's WAL): the
				// walsender goes back to command mode, where startError asks it why.
				return nil, r.startError(ctx, pos, tli, pgconn.ErrorResponseToPgError(m))
			}
			return nil, r.serverError("stream", pgconn.ErrorResponseToPgError(m))
		default:
			// NoticeResponse, ParameterStatus: nothing to do.
		}
	}
}

// handleXLogData copies one XLogData payload into the segment buffer(s) and pushes the segments
// it completes. It does not allocate unless it completes a segment.
func (r *Receiver) handleXLogData(ctx context.Context, ring *ringbuf.Ring, start pgformat.LSN, data []byte) error {
	if start != r.received {
		return r.gapError(start)
	}
	r.st.messages.Add(1)
	r.st.received.Add(int64(len(data)))
	if end, _, ok := r.end(); ok && r.received+pgformat.LSN(len(data)) > end {
		// Nothing after the end is needed: the segment holding it is padded with zeros.
		if r.received >= end {
			return nil
		}
		data = data[:end-r.received]
	}
	mask := pgformat.LSN(r.segSize - 1)
	for len(data) > 0 {
		off := int(r.received & mask)
		if r.cur == nil {
			if off != 0 {
				return r.gapError(start)
			}
			r.cur = ring.Buffer(r.segSize)
			r.curStart = r.received
		}
		n := copy(r.cur[off:], data)
		data = data[n:]
		r.received += pgformat.LSN(n)
		r.st.write.Store(uint64(r.received))
		if h := r.cfg.Archive; h != nil && h.Received != nil {
			report, err := h.Received(r.tli, r.curStart, r.cur, off, off+n)
			if err != nil {
				return err
			}
			if report {
				if err := r.sendStatus(time.Now(), false); err != nil {
					return err
				}
			}
		}
		if off+n == r.segSize {
			if err := r.pushCurrent(ctx, ring, r.segSize); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *Receiver) gapError(start pgformat.LSN) error {
	return fmt.Errorf("walstream: the server sent WAL starting at %s, expected %s (timeline %d)", start, r.received, r.tli)
}

// pushCurrent hands the current segment over; bytes from valid on are zeroed first.
func (r *Receiver) pushCurrent(ctx context.Context, ring *ringbuf.Ring, valid int) error {
	buf := r.cur
	r.cur = nil
	if valid < len(buf) {
		clear(buf[valid:])
	}
	seg := ring.NewSegment()
	seg.Kind = ringbuf.KindSegment
	seg.Name = pgformat.WALFileName(r.tli, r.curStart, r.segSize)
	seg.Timeline = r.tli
	seg.StartLSN = uint64(r.curStart)
	seg.Data = buf
	r.blockedLog = false
	if err := ring.Push(ctx, seg, r.statusInterval, r.onWake); err != nil {
		name := seg.Name
		ring.Release(seg)
		return r.pushError(name, err)
	}
	r.st.segments.Add(1)
	r.lastHeard = time.Now() // nothing was read while the segment was handed over
	if end := r.curStart + pgformat.LSN(valid); end > r.flushed {
		r.flushed = end
		r.st.flush.Store(uint64(end))
	}
	return nil
}

// dropCurrent gives the current segment buffer back to the ring unused.
func (r *Receiver) dropCurrent(ring *ringbuf.Ring) {
	if r.cur == nil {
		return
	}
	seg := ring.NewSegment()
	seg.Kind, seg.Data = ringbuf.KindSegment, r.cur
	r.cur = nil
	ring.Release(seg)
}

// wake is Push's onWake: while the ring is full it keeps the walsender alive.
func (r *Receiver) wake() error {
	if !r.blockedLog {
		r.blockedLog = true
		r.log.Debug("ring full: waiting for the consumer, sending status updates meanwhile", "write_lsn", r.received)
	}
	if !r.copyActive || r.cfg.disableBlockedStatus {
		return nil
	}
	r.st.blockedStatus.Add(1)
	return r.sendStatus(time.Now(), false)
}

// silenceLimit is how long the server may stay silent, although the status updates ask it to
// reply, before the receiver gives up: the progress timeout, else (off) twice
// wal_sender_timeout (0: never).
func (r *Receiver) silenceLimit() time.Duration {
	if p := r.progressTimeout(); p > 0 {
		return p
	}
	return 2 * r.senderTimeout
}

// progressTimeout is Config.ProgressTimeout as it applies (0: off).
func (r *Receiver) progressTimeout() time.Duration {
	return pgrepl.ProgressTimeout(r.cfg.ProgressTimeout)
}

// sendStatus sends a standby status update: write = received, flush = handed to the ring. It
// asks the server for a reply when it has not been heard from for a status interval, so that a
// dead connection is noticed (an idle walsender sends nothing while it gets our updates).
func (r *Receiver) sendStatus(now time.Time, reply bool) error {
	if r.silenceLimit() > 0 && now.Sub(r.lastHeard) > r.statusInterval {
		reply = true
	}
	flush := r.flushed
	if h := r.cfg.Archive; h != nil && h.Flushed != nil {
		flush = h.Flushed()
	}
	write := max(r.received, flush)
	if r.invalidFlush {
		r.invalidFlush, flush = false, 0
	}
	r.statusBuf = pgrepl.AppendStandbyStatus(r.statusBuf[:0], write, flush, 0, now, reply)
	if err := pgrepl.SendStandbyStatus(r.conn, r.statusBuf); err != nil {
		return r.connError(err)
	}
	r.st.status.Add(1)
	r.nextStatus = now.Add(r.statusInterval)
	return nil
}

// finish ends the stream at end: it pushes the segment holding the last byte before end,
// zero-padded after end (unless it was already pushed complete), sends a last status update
// and CopyDone, and reads the server's end of streaming.
func (r *Receiver) finish(ctx context.Context, ring *ringbuf.Ring, end pgformat.LSN) error {
	if err := r.conn.Conn().SetReadDeadline(time.Time{}); err != nil {
		return r.connError(err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if r.cur != nil && end > r.curStart && (end-1).SegmentStart(r.segSize) == r.curStart {
		if err := r.pushCurrent(ctx, ring, int(end-r.curStart)); err != nil {
			return err
		}
	}
	r.dropCurrent(ring)
	if err := r.sendStatus(time.Now(), false); err != nil {
		return err
	}
	if err := pgrepl.SendCopyDone(r.conn); err != nil {
		return r.connError(err)
	}
	r.copyActive = false
	dctx, cancel := context.WithTimeout(ctx, drainTimeout)
	defer cancel()
	if _, err := pgrepl.ReadStreamEnd(dctx, r.conn); err != nil {
		return r.serverError("end streaming", err)
	}
	r.log.Debug("end position reached", "end_lsn", end, "received", r.received)
	return nil
}

// timelineEnded handles the server's CopyDone: it pushes the partial segment of the old
// timeline zero-padded, answers with CopyDone and reads the next timeline.
func (r *Receiver) timelineEnded(ctx context.Context, ring *ringbuf.Ring, tli uint32) (*pgrepl.TimelineSwitch, error) {
	if err := r.conn.Conn().SetReadDeadline(time.Time{}); err != nil {
		return nil, r.connError(err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if r.cfg.Archive != nil {
		// An archive keeps the old timeline's last segment partial (see ArchiveHooks).
		r.dropCurrent(ring)
	} else if r.cur != nil {
		if err := r.pushCurrent(ctx, ring, int(r.received-r.curStart)); err != nil {
			return nil, err
		}
	}
	if err := pgrepl.SendCopyDone(r.conn); err != nil {
		return nil, r.connError(err)
	}
	r.copyActive = false
	dctx, cancel := context.WithTimeout(ctx, drainTimeout)
	defer cancel()
	sw, err := pgrepl.ReadStreamEnd(dctx, r.conn)
	if err != nil {
		return nil, r.serverError("end of timeline", err)
	}
	if sw == nil {
		return nil, fmt.Errorf("walstream: the server ended WAL streaming at %s on timeline %d without naming a next timeline", r.received, tli)
	}
	return sw, nil
}

// DefaultProgressTimeout is what Config.ProgressTimeout 0 means: the same default as
// mux.Config's and the base backup side's.
const DefaultProgressTimeout = pgrepl.DefaultProgressTimeout

// ParseConfig turns a connection string (libpq keywords or a URL; "" takes the PG* environment
// and .pgpass as libpq does) into the physical replication connection configuration that
// Config.ConnConfig needs.
func ParseConfig(connString string) (*pgconn.Config, error) {
	cfg, err := pgrepl.ParseConfig(connString)
	if err != nil {
		return nil, fmt.Errorf("walstream: %w", err)
	}
	return cfg, nil
}
