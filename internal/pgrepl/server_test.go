package pgrepl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/walweave/walweave/internal/pgtest"
	"github.com/walweave/walweave/pgformat"
)

// cluster is shared by the tests of this package that need a server.
var cluster *pgtest.Cluster

func TestMain(m *testing.M) {
	c, err := pgtest.MainOrSkip(pgtest.Options{Settings: map[string]string{"wal_keep_size": "1GB"}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cluster = c
	code := m.Run()
	if c != nil {
		c.Close()
	}
	os.Exit(code)
}

func server(t *testing.T) *pgtest.Cluster {
	t.Helper()
	pgtest.Require(t)
	if cluster == nil {
		t.Skip("no PostgreSQL server")
	}
	return cluster
}

func connect(t *testing.T, dsn string) *pgconn.PgConn {
	t.Helper()
	cfg, err := ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestParseConfig(t *testing.T) {
	t.Setenv("PGAPPNAME", "")
	cfg, err := ParseConfig("host=127.0.0.1 port=5 user=u password=p sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RuntimeParams["replication"] != "true" || cfg.RuntimeParams["application_name"] != "walweave" {
		t.Fatalf("runtime params %v", cfg.RuntimeParams)
	}
	if h, ok := cfg.BuildContextWatcherHandler(&pgconn.PgConn{}).(*pgconn.DeadlineContextWatcherHandler); !ok || h == nil {
		t.Fatalf("context watcher handler %T", cfg.BuildContextWatcherHandler(&pgconn.PgConn{}))
	}
	cfg, err = ParseConfig("postgres://u@127.0.0.1:5/db?application_name=mine&replication=database&sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RuntimeParams["replication"] != "true" || cfg.RuntimeParams["application_name"] != "mine" {
		t.Fatalf("runtime params %v", cfg.RuntimeParams)
	}
	if _, err := ParseConfig("host=127.0.0.1 port=notaport"); err == nil || !strings.HasPrefix(err.Error(), "pgrepl: ") {
		t.Fatalf("bad port: %v", err)
	}
}

func TestIdentifySystemAndShow(t *testing.T) {
	c := server(t)
	conn := connect(t, c.DSN())
	ctx := testCtx(t)
	sys, err := IdentifySystem(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	if want := c.QueryValue(t, "select system_identifier from pg_control_system()"); sys.SystemID != want {
		t.Errorf("system id %q, want %q", sys.SystemID, want)
	}
	if sys.Timeline != 1 || sys.DBName != "" || sys.XLogPos == 0 {
		t.Errorf("IDENTIFY_SYSTEM %+v", sys)
	}
	cur, err := pgformat.ParseLSN(c.QueryValue(t, "select pg_current_wal_flush_lsn()"))
	if err != nil {
		t.Fatal(err)
	}
	if sys.XLogPos > cur {
		t.Errorf("xlogpos %s ahead of the flush position %s", sys.XLogPos, cur)
	}
	v, err := Show(ctx, conn, "wal_segment_size")
	if err != nil {
		t.Fatal(err)
	}
	if size, err := ParseWALSegmentSize(v); v != "16MB" || err != nil || size != 16<<20 {
		t.Errorf("wal_segment_size %q -> %d, %v", v, size, err)
	}
	v, err = Show(ctx, conn, "wal_sender_timeout")
	if err != nil {
		t.Fatal(err)
	}
	if d, err := ParseDuration(v); err != nil || d != time.Minute {
		t.Errorf("wal_sender_timeout %q -> %v, %v", v, d, err)
	}
	if _, err := Show(ctx, conn, "no_such_setting"); err == nil || !strings.Contains(err.Error(), "unrecognized configuration parameter") {
		t.Errorf("SHOW of an unknown setting: %v", err)
	}
	if got, want := ServerVersionNum(conn), c.QueryValue(t, "current_setting('server_version_num')"); strconv.Itoa(got) != want {
		t.Errorf("ServerVersionNum = %d, want %s", got, want)
	}
	if got := c.QueryValue(t, "select application_name from pg_stat_activity where pid = $1", int(conn.PID())); got != "walweave" {
		t.Errorf("application_name %q", got)
	}
	// The connection is a physical walsender: SQL is refused.
	if _, err := conn.Exec(ctx, "select 1").ReadAll(); err == nil {
		t.Error("SQL accepted on a physical replication connection")
	}
}

func slotRow(t *testing.T, c *pgtest.Cluster, name string) string {
	return c.QueryValue(t, "select coalesce((select slot_type || ' ' || temporary || ' ' || coalesce(restart_lsn::text, 'null') from pg_replication_slots where slot_name = $1), '')", name)
}

func TestTemporarySlot(t *testing.T) {
	c := server(t)
	conn := connect(t, c.DSN())
	ctx := testCtx(t)
	name := fmt.Sprintf("pgrepl_test_%d", conn.PID())
	restart, err := CreateTemporaryPhysicalSlot(ctx, conn, name)
	if err != nil {
		t.Fatal(err)
	}
	if restart == 0 {
		t.Fatal("RESERVE_WAL gave no restart LSN")
	}
	if got, want := slotRow(t, c, name), "physical true "+restart.String(); got != want {
		t.Fatalf("pg_replication_slots: %q, want %q", got, want)
	}
	typ, lsn, tli, err := ReadReplicationSlot(ctx, conn, name)
	if err != nil || typ != "physical" || lsn != restart || tli != 1 {
		t.Fatalf("READ_REPLICATION_SLOT: %q %s %d %v", typ, lsn, tli, err)
	}
	typ, lsn, tli, err = ReadReplicationSlot(ctx, conn, "no_such_slot")
	if err != nil || typ != "" || lsn != 0 || tli != 0 {
		t.Fatalf("READ_REPLICATION_SLOT of a missing slot: %q %s %d %v", typ, lsn, tli, err)
	}
	if _, err := CreateTemporaryPhysicalSlot(ctx, conn, name); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("second slot with the same name: %v", err)
	}
	conn.Close(ctx)
	waitSlotGone(t, c, name)
}

func waitSlotGone(t *testing.T, c *pgtest.Cluster, name string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for slotRow(t, c, name) != "" {
		if time.Now().After(deadline) {
			t.Fatalf("slot %s still exists 10s after its connection closed", name)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestPermanentSlot(t *testing.T) {
	c := server(t)
	c.Exec(t, "select pg_create_physical_replication_slot('pgrepl_perm', true)")
	t.Cleanup(func() { c.Exec(t, "select pg_drop_replication_slot('pgrepl_perm')") })
	c.Exec(t, "select pg_create_physical_replication_slot('pgrepl_noreserve')")
	t.Cleanup(func() { c.Exec(t, "select pg_drop_replication_slot('pgrepl_noreserve')") })
	conn := connect(t, c.DSN())
	ctx := testCtx(t)
	want, _ := pgformat.ParseLSN(c.QueryValue(t, "select restart_lsn from pg_replication_slots where slot_name = 'pgrepl_perm'"))
	typ, lsn, tli, err := ReadReplicationSlot(ctx, conn, "pgrepl_perm")
	if err != nil || typ != "physical" || lsn != want || lsn == 0 || tli != 1 {
		t.Fatalf("READ_REPLICATION_SLOT: %q %s %d %v (want %s)", typ, lsn, tli, err, want)
	}
	typ, lsn, tli, err = ReadReplicationSlot(ctx, conn, "pgrepl_noreserve")
	if err != nil || typ != "physical" || lsn != 0 || tli != 0 {
		t.Fatalf("READ_REPLICATION_SLOT without reserved WAL: %q %s %d %v", typ, lsn, tli, err)
	}
}

// receiveCopyData reads messages until a CopyData arrives and returns a copy of its payload.
func receiveCopyData(ctx context.Context, t *testing.T, conn *pgconn.PgConn) []byte {
	t.Helper()
	for {
		msg, err := conn.ReceiveMessage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if cd, ok := msg.(*pgproto3.CopyData); ok {
			return bytes.Clone(cd.Data)
		}
		t.Logf("skipping %T", msg)
	}
}

func TestStartReplicationStreamsServerWAL(t *testing.T) {
	c := server(t)
	conn := connect(t, c.DSN())
	ctx := testCtx(t)
	c.Exec(t, "create table if not exists stream_test (i int); insert into stream_test select generate_series(1, 1000)")
	sys, err := IdentifySystem(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	start := sys.XLogPos.SegmentStart(16 << 20)
	if err := StartReplication(ctx, conn, "", start, sys.Timeline); err != nil {
		t.Fatal(err)
	}
	var got []byte
	for len(got) < 8192 {
		b := receiveCopyData(ctx, t, conn)
		switch b[0] {
		case XLogDataByte:
			x, err := ParseXLogData(b)
			if err != nil {
				t.Fatal(err)
			}
			if x.WALStart != start+pgformat.LSN(len(got)) {
				t.Fatalf("XLogData at %s, want %s", x.WALStart, start+pgformat.LSN(len(got)))
			}
			if x.ServerWALEnd < x.WALStart || time.Since(x.ServerTime) > time.Minute {
				t.Fatalf("XLogData header %+v", x)
			}
			got = append(got, x.Data...)
		case PrimaryKeepaliveByte:
			if _, err := ParsePrimaryKeepalive(b); err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("unexpected message %q", b[0])
		}
	}
	file, err := os.ReadFile(filepath.Join(c.DataDir, "pg_wal", pgformat.WALFileName(sys.Timeline, start, 16<<20)))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, file[:len(got)]) {
		t.Fatal("streamed WAL differs from the server's file")
	}
	status := AppendStandbyStatus(nil, start+pgformat.LSN(len(got)), 0, 0, time.Now(), false)
	if err := SendStandbyStatus(conn, status); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(50, func() {
		if err := SendStandbyStatus(conn, status); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("SendStandbyStatus allocates %v times per call", n)
	}
	// The walsender reports what we told it.
	waitFor(t, func() bool {
		return c.QueryValue(t, "select write_lsn from pg_stat_replication where pid = $1", int(conn.PID())) == (start + pgformat.LSN(len(got))).String()
	})
	if err := SendCopyDone(conn); err != nil {
		t.Fatal(err)
	}
	sw, err := ReadStreamEnd(ctx, conn)
	if err != nil || sw != nil {
		t.Fatalf("ReadStreamEnd: %v %v", sw, err)
	}
	// Back to command mode.
	if _, err := IdentifySystem(ctx, conn); err != nil {
		t.Fatalf("IDENTIFY_SYSTEM after streaming: %v", err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestStartReplicationErrors(t *testing.T) {
	c := server(t)
	conn := connect(t, c.DSN())
	ctx := testCtx(t)
	sys, err := IdentifySystem(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	// The server checks the start against its flush position only after CopyBothResponse: the
	// error is the first message of the stream, then the walsender is back in command mode.
	ahead := sys.XLogPos.SegmentStart(16<<20) + 1<<30
	if err := StartReplication(ctx, conn, "", ahead, sys.Timeline); err != nil {
		t.Fatalf("start ahead of flush: %v", err)
	}
	msg, err := conn.ReceiveMessage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	er, ok := msg.(*pgproto3.ErrorResponse)
	if !ok || !strings.Contains(er.Message, "requested starting point "+ahead.String()+" is ahead of the WAL flush position of this server") {
		t.Fatalf("start ahead of flush: got %T %+v", msg, msg)
	}
	if msg, err := conn.ReceiveMessage(ctx); err != nil {
		t.Fatal(err)
	} else if _, ok := msg.(*pgproto3.ReadyForQuery); !ok {
		t.Fatalf("after the error: %T", msg)
	}
	err = StartReplication(ctx, conn, "no_such_slot", sys.XLogPos.SegmentStart(16<<20), sys.Timeline)
	if err == nil || !strings.Contains(err.Error(), `replication slot "no_such_slot" does not exist`) {
		t.Fatalf("missing slot: %v", err)
	}
	err = StartReplication(ctx, conn, "", sys.XLogPos.SegmentStart(16<<20), 7)
	if err == nil || !strings.Contains(err.Error(), "timeline 7") {
		t.Fatalf("unknown timeline: %v", err)
	}
	// The connection is still usable after the errors.
	if _, err := IdentifySystem(ctx, conn); err != nil {
		t.Fatalf("IDENTIFY_SYSTEM after errors: %v", err)
	}
	if _, _, err := TimelineHistory(ctx, conn, 1); err == nil {
		t.Fatal("TIMELINE_HISTORY 1 on timeline 1 should fail")
	}
}

func TestPromotedStandbyTimelineHistory(t *testing.T) {
	p := server(t)
	s := p.Standby(t)
	ctx := testCtx(t)
	// Streaming from the standby before promotion: on timeline 1.
	pre := connect(t, s.DSN())
	sys, err := IdentifySystem(ctx, pre)
	if err != nil || sys.Timeline != 1 {
		t.Fatalf("standby IDENTIFY_SYSTEM: %+v %v", sys, err)
	}
	pre.Close(ctx)
	// Some WAL on timeline 1 that the standby replays, so that the switch is mid-segment.
	table := fmt.Sprintf("before_promotion_%d", time.Now().UnixNano()) // the server is shared (-count)
	p.Exec(t, fmt.Sprintf("create table %s (i int); insert into %[1]s select generate_series(1, 10000)", table))
	primaryLSN := p.QueryValue(t, "select pg_current_wal_lsn()")
	// Wait until the standby shows the rows (not only an LSN), and check that its WAL goes past
	// the segment start the stream below begins at: otherwise the switch point would be that
	// start and there would be nothing to stream on timeline 1.
	waitFor(t, func() bool {
		v, err := s.QueryValueDB(ctx, "postgres", "select count(*) from "+table)
		return err == nil && v == "10000"
	})
	replayed := s.QueryValue(t, "select pg_last_wal_replay_lsn()")
	if s.QueryValue(t, "select $1::pg_lsn > $2::pg_lsn", replayed, sys.XLogPos.SegmentStart(16<<20).String()) != "true" {
		t.Fatalf("the standby replayed up to %s (primary at %s), not past %s", replayed, primaryLSN, sys.XLogPos.SegmentStart(16<<20))
	}
	s.Promote(t)
	s.Exec(t, "create table after_promotion (i int); insert into after_promotion values (1)") // on the copy only

	conn := connect(t, s.DSN())
	sys2, err := IdentifySystem(ctx, conn)
	if err != nil || sys2.Timeline != 2 || sys2.SystemID != sys.SystemID {
		t.Fatalf("promoted IDENTIFY_SYSTEM: %+v %v", sys2, err)
	}
	name, content, err := TimelineHistory(ctx, conn, 2)
	if err != nil {
		t.Fatal(err)
	}
	file, err := os.ReadFile(filepath.Join(s.DataDir, "pg_wal", "00000002.history"))
	if err != nil {
		t.Fatal(err)
	}
	if name != "00000002.history" || !bytes.Equal(content, file) || !bytes.HasPrefix(content, []byte("1\t")) {
		t.Fatalf("TIMELINE_HISTORY 2: %q %q, file %q", name, content, file)
	}

	// Streaming timeline 1 from the promoted server ends at the switch point with the next
	// timeline.
	start := sys.XLogPos.SegmentStart(16 << 20)
	if err := StartReplication(ctx, conn, "", start, 1); err != nil {
		t.Fatal(err)
	}
	pos := start
	for {
		msg, err := conn.ReceiveMessage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := msg.(*pgproto3.CopyDone); ok {
			break
		}
		if cd, ok := msg.(*pgproto3.CopyData); ok && cd.Data[0] == XLogDataByte {
			x, _ := ParseXLogData(cd.Data)
			pos = x.WALStart + pgformat.LSN(len(x.Data))
		}
	}
	if err := SendCopyDone(conn); err != nil {
		t.Fatal(err)
	}
	sw, err := ReadStreamEnd(ctx, conn)
	if err != nil || sw == nil {
		t.Fatalf("ReadStreamEnd after the end of timeline 1: %v %v", sw, err)
	}
	// 00000002.history: "1\t0/3000XXX\tno recovery target specified"
	fields := strings.Fields(string(file))
	switchPoint, err := pgformat.ParseLSN(fields[1])
	if err != nil {
		t.Fatal(err)
	}
	if sw.NextTLI != 2 || sw.StartPos != switchPoint || pos < switchPoint {
		t.Fatalf("timeline switch %+v (streamed to %s), history says %s", sw, pos, switchPoint)
	}
	t.Logf("timeline 1 ended at %s (streamed up to %s), next timeline %d", sw.StartPos, pos, sw.NextTLI)

	// Starting exactly at the switch point: nothing to stream, the server names the next
	// timeline without entering COPY mode.
	err = StartReplication(ctx, conn, "", switchPoint, 1)
	var ended *TimelineEndedError
	if !errors.As(err, &ended) || ended.Next.NextTLI != 2 || ended.Next.StartPos != switchPoint || ended.Timeline != 1 {
		t.Fatalf("start at the switch point: %v", err)
	}
	t.Log(err)
	// Past the switch point on timeline 1: not in the server's history.
	err = StartReplication(ctx, conn, "", switchPoint+16<<20, 1)
	if err == nil || !strings.Contains(err.Error(), "is not in this server's history") {
		t.Fatalf("start past the switch point: %v", err)
	}
	if _, err := IdentifySystem(ctx, conn); err != nil {
		t.Fatal(err)
	}
}
