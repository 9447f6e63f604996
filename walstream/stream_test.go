package walstream

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/walweave/walweave/internal/pgrepl"
	"github.com/walweave/walweave/internal/pgtest"
	"github.com/walweave/walweave/pgformat"
	"github.com/walweave/walweave/ringbuf"
)

func TestConnect(t *testing.T) {
	c := sharedCluster(t)
	r := connectT(t, connCfg(t, c, "", 0))
	if want := c.QueryValue(t, "select system_identifier from pg_control_system()"); r.SystemID() != want {
		t.Errorf("SystemID %q, want %q", r.SystemID(), want)
	}
	if r.Timeline() != 1 || r.XLogPos() == 0 || r.SegmentSize() != 16<<20 || r.ServerVersion() < 150000 {
		t.Errorf("tli %d xlogpos %s segsize %d version %d", r.Timeline(), r.XLogPos(), r.SegmentSize(), r.ServerVersion())
	}
	if r.WALSenderTimeout() != time.Minute || r.StatusInterval() != DefaultStatusInterval {
		t.Errorf("wal_sender_timeout %v, status interval %v", r.WALSenderTimeout(), r.StatusInterval())
	}
	if r.SlotName() != "" {
		t.Errorf("slot name before PrepareSlot: %q", r.SlotName())
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	// The wal_sender_timeout a client sets for itself caps the status interval.
	cfg := connCfg(t, c, "", 0)
	cfg.ConnConfig.RuntimeParams["wal_sender_timeout"] = "3s"
	r2 := connectT(t, cfg)
	if r2.WALSenderTimeout() != 3*time.Second || r2.StatusInterval() != time.Second {
		t.Errorf("wal_sender_timeout %v, status interval %v", r2.WALSenderTimeout(), r2.StatusInterval())
	}
	// Connection errors say what failed.
	bad := connCfg(t, c, "", 0)
	bad.ConnConfig.Password = "wrong"
	if _, err := Connect(context.Background(), bad); err == nil || !strings.Contains(err.Error(), "walstream: connect for WAL streaming") ||
		!strings.Contains(err.Error(), "password authentication failed") {
		t.Fatalf("wrong password: %v", err)
	}
	if _, err := Connect(context.Background(), Config{}); err == nil {
		t.Fatal("Connect without ConnConfig")
	}
}

func TestStatusIntervalCap(t *testing.T) {
	for _, tc := range []struct{ want, timeout, got time.Duration }{
		{0, time.Minute, 10 * time.Second},
		{0, 0, 10 * time.Second},
		{0, 2 * time.Second, 666666666},
		{0, 150 * time.Millisecond, 100 * time.Millisecond},
		{time.Second, time.Minute, time.Second},
		{time.Minute, 0, time.Minute},
		{50 * time.Millisecond, time.Minute, 50 * time.Millisecond},
	} {
		if got := statusInterval(tc.want, tc.timeout); got != tc.got {
			t.Errorf("statusInterval(%v, %v) = %v, want %v", tc.want, tc.timeout, got, tc.got)
		}
	}
}

func TestTemporarySlotLifetime(t *testing.T) {
	c := sharedCluster(t)
	r := connectT(t, connCfg(t, c, "", 0))
	ctx := context.Background()
	if err := r.PrepareSlot(ctx); err != nil {
		t.Fatal(err)
	}
	name := r.SlotName()
	if !strings.HasPrefix(name, "walweave_") {
		t.Fatalf("slot name %q", name)
	}
	if got := c.QueryValue(t, "select slot_type || ' ' || temporary || ' ' || (restart_lsn is not null) from pg_replication_slots where slot_name = $1", name); got != "physical true true" {
		t.Fatalf("slot %s: %q", name, got)
	}
	if err := r.PrepareSlot(ctx); err != nil {
		t.Fatalf("PrepareSlot twice: %v", err)
	}
	r.Close()
	waitSlotGone(t, c, name)
}

func TestSystemIDMismatch(t *testing.T) {
	c := sharedCluster(t)
	r := connectT(t, connCfg(t, c, "", 0))
	ring := ringbuf.New(2)
	err := r.Stream(context.Background(), ring, r.XLogPos(), 1, "12345")
	if err == nil || !strings.Contains(err.Error(), "system identifier does not match") {
		t.Fatalf("mismatch: %v", err)
	}
	if _, terr := ring.Take(context.Background()); terr == nil || terr.Error() != err.Error() {
		t.Fatalf("ring not closed with the error: %v", terr)
	}
	if err := r.Stream(context.Background(), ringbuf.New(2), r.XLogPos(), 1, ""); err == nil {
		t.Fatal("second Stream accepted")
	}
}

// TestStreamUnderLoad streams while pgbench writes and a consumer drains: every segment must
// be the server's file byte for byte; the last one is padded with zeros after the end LSN.
func TestStreamUnderLoad(t *testing.T) {
	c := sharedWithPgbench(t)
	load := c.StartLoad(t, 2)
	r := connectT(t, connCfg(t, c, "", 300*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := r.PrepareSlot(ctx); err != nil {
		t.Fatal(err)
	}
	start := lsnOf(t, c, "select pg_current_wal_lsn()")
	ring := ringbuf.New(ringbuf.DefaultSlots)
	col := newCollector(ring, c.DataDir, false)
	res := startStream(ctx, r, ring, start, 1)

	for i := 0; i < 5; i++ {
		time.Sleep(200 * time.Millisecond)
		c.Exec(t, "select pg_switch_wal()")
	}
	waitUntil(t, 60*time.Second, "5 segments", func() bool { return col.count() >= 5 })
	time.Sleep(300 * time.Millisecond) // some WAL after the last switch: the end is mid-segment
	// While streaming the socket wakes the receiver in batches (see walLowWater).
	if v, ok := pgrepl.RecvLowWater(r.conn.Conn()); !ok || v != walLowWater {
		t.Errorf("SO_RCVLOWAT while streaming = %d (%v), want %d", v, ok, walLowWater)
	}
	end := lsnOf(t, c, "select pg_current_wal_lsn()")
	setAt := time.Now()
	r.SetEnd(end, 1)
	if err := res.wait(t, 30*time.Second); err != nil {
		t.Fatalf("Stream: %v", err)
	}
	if v, _ := pgrepl.RecvLowWater(r.conn.Conn()); v != 1 {
		t.Errorf("SO_RCVLOWAT after the stream = %d, want 1", v)
	}
	t.Logf("Stream returned %v after SetEnd", res.at.Sub(setAt))
	if d := res.at.Sub(setAt); d > 5*time.Second {
		t.Errorf("Stream took %v after SetEnd", d)
	}
	segs, err := col.wait(t, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	checkSegments(t, segs, 1, start, end, r.SegmentSize())
	last := segs[len(segs)-1]
	checkPadded(t, last, int(end-last.StartLSN))
	if err := load.Stop(); err != nil {
		t.Fatal(err)
	}

	st := r.Stats()
	t.Logf("%d segments, stats %+v", len(segs), st)
	if st.Segments != int64(len(segs)) || st.Messages == 0 || st.StatusUpdates == 0 || st.FlushPos != end ||
		st.WritePos < end || len(st.Timelines) != 1 || st.Timelines[0] != 1 {
		t.Errorf("stats %+v", st)
	}
	if st.ReceivedBytes < int64(end-start.SegmentStart(r.SegmentSize())) {
		t.Errorf("received %d bytes, less than the streamed range", st.ReceivedBytes)
	}
	name := r.SlotName()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	waitSlotGone(t, c, name)
}

// TestSetEndBeforeStream: the end is already known and the WAL is there: Stream returns
// without waiting for anything else.
func TestSetEndBeforeStream(t *testing.T) {
	c := sharedCluster(t)
	c.Exec(t, "select pg_switch_wal()")
	start := lsnOf(t, c, "select pg_current_wal_lsn()")
	c.Exec(t, "insert into small select generate_series(1, 100)")
	// The insert position: with synchronous_commit=off the write position may not have moved yet.
	end := lsnOf(t, c, "select pg_current_wal_insert_lsn()")
	r := connectT(t, connCfg(t, c, "", 0))
	r.SetEnd(end, 1)
	r.SetEnd(end+1<<30, 1) // ignored
	ring := ringbuf.New(2)
	col := newCollector(ring, c.DataDir, false)
	t0 := time.Now()
	if err := r.Stream(context.Background(), ring, start, 1, ""); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t0); d > 3*time.Second {
		t.Errorf("Stream took %v", d)
	}
	segs, err := col.wait(t, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(segs) != 1 {
		t.Fatalf("segments %+v", segs)
	}
	checkSegments(t, segs, 1, start, end, r.SegmentSize())
	checkPadded(t, segs[0], int(end-segs[0].StartLSN))
}

// stallCluster has wal_sender_timeout=2s and pgbench tables; both stall tests use it.
var stallCluster *pgtest.Cluster

func startStallCluster(t *testing.T) *pgtest.Cluster {
	t.Helper()
	if stallCluster != nil {
		return stallCluster
	}
	pgtest.Require(t)
	// 1 MiB segments: the stall moves 16 times less data, which matters under the race
	// detector. (initdb's --wal-segsize, not pg_resetwal: the installed pg_resetwal is
	// Debian's 15 and refuses the matrix's newer data directories.)
	c, err := pgtest.StartMain(pgtest.Options{Settings: baseSettings(map[string]string{"wal_sender_timeout": "2s"}), WALSegmentSizeMB: 1})
	if err != nil {
		t.Fatal(err)
	}
	stallCluster = c // closed by TestMain
	c.PgbenchInit(t, 1)
	return c
}

const timeoutLine = "terminating walsender process due to replication timeout"

// runStall streams with a 2-slot ring whose consumer does not take anything for pause while WAL
// keeps coming (pgbench plus a WAL switch every 200ms).
func runStall(t *testing.T, c *pgtest.Cluster, blockedStatus bool, pause time.Duration) (r *Receiver, res *streamResult, col *collector, start pgformat.LSN, logFrom int) {
	logFrom = len(c.Log())
	cfg := connCfg(t, c, "", 0)
	cfg.disableBlockedStatus = !blockedStatus
	r = connectT(t, cfg)
	if r.WALSenderTimeout() != 2*time.Second || r.StatusInterval() != 666666666 || r.SegmentSize() != 1<<20 {
		t.Fatalf("wal_sender_timeout %v status interval %v segment size %d", r.WALSenderTimeout(), r.StatusInterval(), r.SegmentSize())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	if err := r.PrepareSlot(ctx); err != nil {
		t.Fatal(err)
	}
	load := c.StartLoad(t, 2)
	start = lsnOf(t, c, "select pg_current_wal_lsn()")
	ring := ringbuf.New(2)
	col = newCollector(ring, c.DataDir, true)
	res = startStream(ctx, r, ring, start, 1)
	stop := switcher(c, 200*time.Millisecond)
	waitUntil(t, 20*time.Second, "the ring to fill", func() bool { return ring.Stats().Blocks > 0 })
	blockedAt := time.Now()
	time.Sleep(pause)
	stop()
	if err := load.Stop(); err != nil {
		t.Fatal(err)
	}
	t.Logf("receiver blocked for %v while WAL kept coming; resuming the consumer", time.Since(blockedAt).Round(time.Millisecond))
	col.resume()
	return r, res, col, start, logFrom
}

func TestStallKeepsConnection(t *testing.T) {
	c := startStallCluster(t)
	r, res, col, start, logFrom := runStall(t, c, true, 10*time.Second)
	// The stream survived: it still delivers what was written after the stall.
	c.Exec(t, "select pg_switch_wal()")
	c.Exec(t, "insert into pgbench_history (tid, bid, aid, delta, mtime) values (1, 1, 1, 1, now())")
	end := lsnOf(t, c, "select pg_current_wal_lsn()")
	r.SetEnd(end, 1)
	if err := res.wait(t, 60*time.Second); err != nil {
		t.Fatalf("Stream after the stall: %v\nserver log:\n%s", err, c.Log()[logFrom:])
	}
	segs, err := col.wait(t, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(c.Log()[logFrom:], timeoutLine) {
		t.Fatalf("the walsender timed out:\n%s", c.Log()[logFrom:])
	}
	checkSegments(t, segs, 1, start, end, r.SegmentSize())
	checkPadded(t, segs[len(segs)-1], int(end-segs[len(segs)-1].StartLSN))
	st := r.Stats()
	t.Logf("%d segments intact; stats %+v", len(segs), st)
	if st.BlockedStatusUpdates < 10 || st.Blocked < 9*time.Second || len(segs) < 10 {
		t.Errorf("the stall was not exercised: %d segments, %+v", len(segs), st)
	}
}

func TestStallWithoutStatusUpdatesIsKilled(t *testing.T) {
	c := startStallCluster(t)
	_, res, col, _, logFrom := runStall(t, c, false, 5*time.Second)
	err := res.wait(t, 60*time.Second)
	if err == nil {
		t.Fatal("Stream survived a stall without status updates")
	}
	t.Logf("Stream: %v", err)
	if !strings.Contains(err.Error(), "connection") || !strings.Contains(err.Error(), "wal_sender_timeout=2s expired") {
		t.Errorf("error does not say what happened: %v", err)
	}
	waitUntil(t, 10*time.Second, "the timeout in the server log", func() bool { return strings.Contains(c.Log()[logFrom:], timeoutLine) })
	if _, cerr := col.wait(t, 10*time.Second); cerr == nil || cerr.Error() != err.Error() {
		t.Errorf("consumer saw %v", cerr)
	}
}

// TestTerminateWalsender: pg_terminate_backend of the walsender ends Stream with an error that
// names it; the temporary slot goes and no goroutine is left.
func TestTerminateWalsender(t *testing.T) {
	c := sharedCluster(t)
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	r, err := Connect(context.Background(), connCfg(t, c, "", 0))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := r.PrepareSlot(ctx); err != nil {
		t.Fatal(err)
	}
	name := r.SlotName()
	ring := ringbuf.New(4)
	col := newCollector(ring, c.DataDir, false)
	res := startStream(ctx, r, ring, lsnOf(t, c, "select pg_current_wal_lsn()"), 1)
	var pid string
	waitUntil(t, 10*time.Second, "the walsender to stream", func() bool {
		pid = c.QueryValue(t, "select coalesce((select pid::text from pg_stat_replication where state = 'streaming' and application_name = 'walweave' and pid = (select active_pid from pg_replication_slots where slot_name = $1)), '')", name)
		return pid != ""
	})
	c.Exec(t, "insert into small select generate_series(1, 10)")
	killed := time.Now()
	c.Exec(t, "select pg_terminate_backend("+pid+")")
	err = res.wait(t, 10*time.Second)
	t.Logf("after %v: %v", time.Since(killed).Round(time.Millisecond), err)
	if err == nil || !strings.Contains(err.Error(), "terminated") || !strings.Contains(err.Error(), "administrator command") {
		t.Fatalf("error does not name what happened: %v", err)
	}
	if d := res.at.Sub(killed); d > 5*time.Second {
		t.Errorf("Stream noticed after %v", d)
	}
	if _, cerr := col.wait(t, 5*time.Second); cerr == nil {
		t.Error("consumer saw no error")
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	waitSlotGone(t, c, name)
}

// TestCancel: cancelling the context ends Stream promptly, while reading and while blocked in
// Push; the slot goes and no goroutine is left.
func TestCancel(t *testing.T) {
	c := sharedCluster(t)
	for _, blocked := range []bool{false, true} {
		name := "reading"
		if blocked {
			name = "blocked"
		}
		t.Run(name, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			r, err := Connect(context.Background(), connCfg(t, c, "", 0))
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if err := r.PrepareSlot(ctx); err != nil {
				t.Fatal(err)
			}
			slot := r.SlotName()
			ring := ringbuf.New(1)
			col := newCollector(ring, c.DataDir, blocked)
			res := startStream(ctx, r, ring, lsnOf(t, c, "select pg_current_wal_lsn()"), 1)
			if blocked {
				waitUntil(t, 20*time.Second, "the ring to fill", func() bool {
					c.Exec(t, "insert into small values (1); select pg_switch_wal()")
					return ring.Stats().Blocks > 0
				})
			} else {
				waitUntil(t, 10*time.Second, "streaming", func() bool { return r.Stats().StatusUpdates > 0 })
				time.Sleep(100 * time.Millisecond)
			}
			t0 := time.Now()
			cancel()
			err = res.wait(t, 5*time.Second)
			t.Logf("returned after %v: %v", time.Since(t0).Round(time.Microsecond), err)
			if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "cancelled") {
				t.Fatalf("error %v", err)
			}
			if d := res.at.Sub(t0); d > time.Second {
				t.Errorf("Stream returned %v after cancel", d)
			}
			if blocked {
				col.resume()
			}
			if _, cerr := col.wait(t, 5*time.Second); !errors.Is(cerr, context.Canceled) {
				t.Errorf("consumer saw %v", cerr)
			}
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
			waitSlotGone(t, c, slot)
		})
	}
}

// TestCloseWhileStreaming: Close from another goroutine stops Stream.
func TestCloseWhileStreaming(t *testing.T) {
	c := sharedCluster(t)
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	r, err := Connect(context.Background(), connCfg(t, c, "", 0))
	if err != nil {
		t.Fatal(err)
	}
	ring := ringbuf.New(2)
	col := newCollector(ring, c.DataDir, false)
	res := startStream(context.Background(), r, ring, lsnOf(t, c, "select pg_current_wal_lsn()"), 1)
	waitUntil(t, 10*time.Second, "streaming", func() bool { return r.Stats().StatusUpdates > 0 })
	slot := r.SlotName()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := res.wait(t, 5*time.Second); err == nil || !strings.Contains(err.Error(), "receiver was closed") {
		t.Fatalf("Stream: %v", err)
	}
	col.wait(t, 5*time.Second)
	waitSlotGone(t, c, slot)
}

// TestPromotedStandby streams from a promoted standby starting on timeline 1, before the
// promotion: timeline 1's WAL up to the switch point, 00000002.history, then timeline 2.
//
// Timeline 1 ends just before the switch point, so its last segment is the one holding the
// switch point's previous byte (padded after the switch point), not necessarily the one holding
// the switch point: when the switch point falls on a segment start (the last replayed record
// was a WAL switch, every run on 18), timeline 1 has no byte in that segment, the server streams
// nothing of it, and the first timeline-2 segment (which holds timeline 1's WAL up to the
// switch point, as PostgreSQL writes it) is the one recovery reads. The receiver hands over
// what the server sends; the test expects it from the switch point. Both shapes are made on
// purpose: a promotion in the middle of a segment, and one right after a WAL switch.
func TestPromotedStandby(t *testing.T) {
	t.Run("mid-segment", func(t *testing.T) { testPromotedStandby(t, false) })
	t.Run("at-segment-start", func(t *testing.T) { testPromotedStandby(t, true) })
}

func testPromotedStandby(t *testing.T, atSegmentStart bool) {
	p := sharedCluster(t)
	s := p.Standby(t)
	var start pgformat.LSN
	if !atSegmentStart {
		// The start: an LSN on timeline 1 before WAL that the standby replays and that
		// precedes the promotion, so timeline 1 has WAL after it in the same segment.
		p.Exec(t, "create table if not exists before_promotion (i int)")
		start = lsnOf(t, p, "select pg_current_wal_insert_lsn()")
		p.Exec(t, "insert into before_promotion select generate_series(1, 10000)")
		// The insert position, not pg_current_wal_lsn(): that is the write position, which
		// under synchronous_commit=off can still be before the rows (at the segment start the
		// standby already replayed up to), and the standby would be promoted without them:
		// that is how the old version of this test fell on the segment-start edge by accident.
		primaryLSN := p.QueryValue(t, "select pg_current_wal_insert_lsn()")
		waitUntil(t, 30*time.Second, "the standby to replay", func() bool {
			return s.QueryValue(t, "select pg_last_wal_replay_lsn() >= $1::pg_lsn", primaryLSN) == "true"
		})
	}
	// atSegmentStart: promoted at once, the standby has replayed exactly its base backup's WAL,
	// which ends with pg_backup_stop's WAL switch: timeline 1 ends on a segment start.
	s.Promote(t)
	s.Exec(t, "create table after_promotion (i int); insert into after_promotion select generate_series(1, 10000)")
	s.Exec(t, "select pg_switch_wal()")
	s.Exec(t, "insert into after_promotion select generate_series(1, 1000)")
	end := lsnOf(t, s, "select pg_current_wal_lsn()")
	history, err := os.ReadFile(filepath.Join(s.DataDir, "pg_wal", "00000002.history"))
	if err != nil {
		t.Fatal(err)
	}
	switchPoint, err := pgformat.ParseLSN(strings.Fields(string(history))[1])
	if err != nil {
		t.Fatal(err)
	}
	seg := pgformat.LSN(0)
	if atSegmentStart {
		start = (switchPoint - 1).SegmentStart(16 << 20)
	}
	t.Logf("start %s, switch %s, end %s", start, switchPoint, end)
	if start >= switchPoint {
		t.Fatalf("start %s is not before the switch point %s", start, switchPoint)
	}
	if onStart := switchPoint == switchPoint.SegmentStart(16<<20); onStart != atSegmentStart {
		t.Logf("switch point %s on a segment start: %v, wanted %v (the test still checks what it got)", switchPoint, onStart, atSegmentStart)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// stream runs a receiver from (from, tli) to end on timeline 2 and checks what it hands
	// over: timeline 1's segments from from's segment to the one holding switchPoint-1 (none
	// when from's segment starts at the switch point), the history file, timeline 2's segments.
	stream := func(from pgformat.LSN) {
		t.Helper()
		r := connectT(t, connCfg(t, s, "", 0))
		if r.Timeline() != 2 {
			t.Fatalf("timeline %d", r.Timeline())
		}
		seg = pgformat.LSN(r.SegmentSize())
		ring := ringbuf.New(4)
		col := newCollector(ring, s.DataDir, false)
		r.SetEnd(end, 2)
		if err := r.Stream(ctx, ring, from, 1, r.SystemID()); err != nil {
			t.Fatal(err)
		}
		segs, err := col.wait(t, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, sg := range segs {
			names = append(names, sg.Name)
		}
		t.Logf("from %s on timeline 1, handed over: %v", from, names)
		var old []taken
		for len(segs) > 0 && segs[0].Kind == ringbuf.KindSegment && segs[0].Timeline == 1 {
			old, segs = append(old, segs[0]), segs[1:]
		}
		if from.SegmentStart(int(seg)) < switchPoint {
			// Timeline 1, up to the segment holding its last byte, padded after the switch point.
			checkSegments(t, old, 1, from, switchPoint, int(seg))
			last := old[len(old)-1]
			if last.FirstDiff == -2 {
				t.Fatalf("no server file for %s", last.Name)
			}
			checkPadded(t, last, int(switchPoint-last.StartLSN))
		} else if len(old) != 0 {
			t.Fatalf("timeline 1 segments %v from %s: timeline 1 ends at %s", old, from, switchPoint)
		}
		// Then the history file, equal to the server's.
		if len(segs) < 2 || segs[0].Kind != ringbuf.KindHistory || segs[0].Name != "00000002.history" || segs[0].Timeline != 2 {
			t.Fatalf("after timeline 1: %+v, want 00000002.history", segs)
		}
		if got := string(col.history["00000002.history"]); got != string(history) {
			t.Fatalf("history %q, want %q", got, history)
		}
		// Then timeline 2 from the switch segment to the end.
		checkSegments(t, segs[1:], 2, switchPoint, end, int(seg))
		checkPadded(t, segs[len(segs)-1], int(end-segs[len(segs)-1].StartLSN))
		if st := r.Stats(); len(st.Timelines) != 2 || st.Timelines[0] != 1 || st.Timelines[1] != 2 || st.HistoryFiles != 1 {
			t.Errorf("stats %+v", st)
		}
	}
	stream(start)
	// The edge: starting exactly at the switch point on timeline 1. When it is a segment start,
	// the server switches timelines at once without streaming timeline 1 (walsender's
	// StartReplication: start == the historic timeline's end).
	stream(switchPoint)

	// Starting on timeline 2 pushes its history file first.
	r2 := connectT(t, connCfg(t, s, "", 0))
	ring2 := ringbuf.New(4)
	col2 := newCollector(ring2, s.DataDir, false)
	r2.SetEnd(end, 2)
	if err := r2.Stream(ctx, ring2, end-1, 2, ""); err != nil {
		t.Fatal(err)
	}
	segs2, err := col2.wait(t, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(segs2) != 2 || segs2[0].Name != "00000002.history" {
		t.Fatalf("from timeline 2: %+v", segs2)
	}
	checkSegments(t, segs2[1:], 2, end-1, end, int(seg))
}

// TestPermanentSlot: a missing slot is a clear error; an existing one is used and its
// restart_lsn follows the flush position.
func TestPermanentSlot(t *testing.T) {
	c := sharedCluster(t)
	r := connectT(t, connCfg(t, c, "nope", 0))
	err := r.PrepareSlot(context.Background())
	want := `walstream: replication slot "nope": the replication slot does not exist; create it with SELECT pg_create_physical_replication_slot('nope', true), or stream through a temporary slot (no slot name)`
	if !errors.Is(err, ErrSlotMissing) || err.Error() != want {
		t.Fatalf("missing slot:\n got %v\nwant %s", err, want)
	}
	r.Close()

	c.Exec(t, "select pg_create_physical_replication_slot('walstream_perm', true)")
	t.Cleanup(func() { c.Exec(t, "select pg_drop_replication_slot('walstream_perm')") })
	before := lsnOf(t, c, "select restart_lsn from pg_replication_slots where slot_name = 'walstream_perm'")
	r = connectT(t, connCfg(t, c, "walstream_perm", 200*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := r.PrepareSlot(ctx); err != nil {
		t.Fatal(err)
	}
	if r.SlotName() != "walstream_perm" {
		t.Fatalf("slot name %q", r.SlotName())
	}
	start := lsnOf(t, c, "select pg_current_wal_lsn()")
	ring := ringbuf.New(4)
	col := newCollector(ring, c.DataDir, false)
	res := startStream(ctx, r, ring, start, 1)
	waitUntil(t, 10*time.Second, "streaming", func() bool {
		return c.QueryValue(t, "select active from pg_replication_slots where slot_name = 'walstream_perm'") == "true"
	})

	// While it is in use, another receiver is told so.
	other := connectT(t, connCfg(t, c, "walstream_perm", 0))
	if err := other.PrepareSlot(ctx); !errors.Is(err, ErrSlotInUse) || !strings.Contains(err.Error(), `replication slot "walstream_perm"`) {
		t.Fatalf("slot in use: %v", err)
	}
	other.Close()

	c.Exec(t, "select pg_switch_wal()")
	c.Exec(t, "insert into small select generate_series(1, 10)")
	c.Exec(t, "select pg_switch_wal()")
	firstEnd := start.SegmentStart(r.SegmentSize()) + pgformat.LSN(r.SegmentSize())
	waitUntil(t, 10*time.Second, "restart_lsn to follow the flush position", func() bool {
		return lsnOf(t, c, "select restart_lsn from pg_replication_slots where slot_name = 'walstream_perm'") >= firstEnd
	})
	c.Exec(t, "insert into small select generate_series(1, 10)")
	end := lsnOf(t, c, "select pg_current_wal_lsn()")
	r.SetEnd(end, 1)
	if err := res.wait(t, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	segs, err := col.wait(t, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	checkSegments(t, segs, 1, start, end, r.SegmentSize())
	after := lsnOf(t, c, "select restart_lsn from pg_replication_slots where slot_name = 'walstream_perm'")
	t.Logf("restart_lsn %s -> %s (end %s)", before, after, end)
	if after != end {
		t.Errorf("restart_lsn after the stream: %s, want the end %s", after, end)
	}
	r.Close()
	// A permanent slot stays.
	if !slotExists(t, c, "walstream_perm") {
		t.Fatal("permanent slot dropped")
	}
}

// TestWALRemoved: a start whose WAL the server has recycled gives an error that says so.
func TestWALRemoved(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{Settings: map[string]string{"wal_keep_size": "0", "max_wal_size": "32MB", "min_wal_size": "32MB"}})
	old := lsnOf(t, c, "select pg_current_wal_lsn()")
	for i := 0; i < 6; i++ {
		c.Exec(t, "select pg_switch_wal(); create table if not exists t (i int); insert into t values (1); checkpoint")
	}
	r := connectT(t, connCfg(t, c, "", 0))
	ring := ringbuf.New(2)
	err := r.Stream(context.Background(), ring, old, 1, "")
	t.Log(err)
	if err == nil || !strings.Contains(err.Error(), "has already been removed") || !strings.Contains(err.Error(), "no longer has the WAL") {
		t.Fatalf("error %v", err)
	}
}
