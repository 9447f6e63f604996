package mux_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/walweave/walweave/internal/pgtest"
	"github.com/walweave/walweave/mux"
	"github.com/walweave/walweave/verify"
)

func TestMain(m *testing.M) {
	// Toxiproxy (netfault_test.go) keeps some goroutines of its own after a proxy stops.
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/Shopify/toxiproxy/v2/toxics.(*ToxicStub).Run"),
		goleak.IgnoreAnyFunction("github.com/Shopify/toxiproxy/v2.(*ToxicLink).pipe"),
		// A link's reader blocked handing data to a toxic chain its proxy already stopped
		// (seen once, after the black-hole tests): Toxiproxy's goroutine, not ours.
		goleak.IgnoreAnyFunction("github.com/Shopify/toxiproxy/v2.(*ToxicLink).read"),
		goleak.IgnoreAnyFunction("github.com/Shopify/toxiproxy/v2.(*ToxicLink).write"))
}

// backupToFile runs Backup into a file in dir and returns its path.
func backupToFile(t *testing.T, ctx context.Context, w func(f *os.File) ioWriter, cfg mux.Config) (string, mux.Result, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "base.tar")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out ioWriter = f
	if w != nil {
		out = w(f)
	}
	res, err := mux.Backup(ctx, out, cfg)
	return path, res, err
}

type ioWriter interface{ Write([]byte) (int, error) }

// walSwitcher completes a WAL segment every interval until stopped, so that segments are
// ready to be woven in while the backup runs.
func walSwitcher(t *testing.T, c *pgtest.Cluster, every time.Duration) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				_ = c.ExecContext(ctx, "select pg_switch_wal()")
			}
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(stop)
	return stop
}

var walName = regexp.MustCompile(`^pg_wal/[0-9A-F]{24}$`)

// checkLayout checks the stream contract's order on a listing and returns the index of the
// first WAL segment and of the last data member.
func checkLayout(t *testing.T, list []pgtest.TarMember) (firstWAL, lastData int) {
	t.Helper()
	firstWAL, lastData = -1, -1
	if len(list) == 0 || list[len(list)-1].Name != "backup_manifest" {
		t.Fatalf("backup_manifest is not the last member")
	}
	seen := map[string]bool{}
	var prevWAL string
	for i, m := range list {
		if seen[m.Name] && m.Type != '5' {
			t.Fatalf("member %s appears twice", m.Name)
		}
		seen[m.Name] = true
		if strings.HasPrefix(m.Name, "./") || strings.HasPrefix(m.Name, "/") {
			t.Fatalf("member name %q is not relative and normalised", m.Name)
		}
		switch {
		case walName.MatchString(m.Name):
			if firstWAL < 0 {
				firstWAL = i
			}
			if m.Size != 16<<20 {
				t.Fatalf("%s: %d bytes, want a full segment", m.Name, m.Size)
			}
			if m.Name[8+7:] <= prevWAL { // segment number part, same timeline
				t.Fatalf("WAL segments out of order: %s after %s", m.Name, prevWAL)
			}
			prevWAL = m.Name[8+7:]
		case strings.HasPrefix(m.Name, "pg_wal/") && strings.HasSuffix(m.Name, ".partial"):
			t.Fatalf("partial segment %s in the stream", m.Name)
		case m.Name == "backup_manifest" || strings.HasPrefix(m.Name, "pg_wal/"):
		default:
			lastData = i
		}
		if m.Type == '0' && m.Mode&0o077&^0o040 != 0 {
			t.Fatalf("%s has mode %o", m.Name, m.Mode)
		}
	}
	if firstWAL < 0 {
		t.Fatal("no WAL segment in the stream")
	}
	return firstWAL, lastData
}

// TestRestoreDrill is the test that matters: a backup under write load, with a tablespace
// and an unlogged table, restores with plain tar into a directory that pg_verifybackup
// accepts and PostgreSQL starts on, consistent.
func TestRestoreDrill(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{})
	c.CreateTablespace(t, "ts1")
	c.Exec(t, `create table in_ts (i int) tablespace ts1;
		insert into in_ts select generate_series(1, 1234);
		create unlogged table scratch (i int); insert into scratch select generate_series(1, 100);`)
	c.PgbenchInit(t, 5)
	load := c.StartLoad(t, 4)
	stop := walSwitcher(t, c, 300*time.Millisecond)

	var phases []mux.Phase
	var last mux.Progress
	cfg := mux.Config{ConnString: c.DSN(), Checkpoint: mux.CheckpointFast, MaxRate: 20 << 20,
		Progress: func(p mux.Progress) {
			if len(phases) == 0 || phases[len(phases)-1] != p.Phase {
				phases = append(phases, p.Phase)
			}
			last = p
		}}
	path, res, err := backupToFile(t, context.Background(), nil, cfg)
	stop()
	if err := load.Stop(); err != nil {
		t.Fatal(err)
	}
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	t.Logf("result: %+v", res)
	if res.StartLSN == 0 || res.EndLSN <= res.StartLSN || res.SystemID == "" || res.WALSegments == 0 || res.Tablespaces != 1 {
		t.Fatalf("implausible result %+v", res)
	}
	if last.Phase != mux.PhaseDone || last.TotalBytes == 0 || last.BytesDone == 0 || last.WALSegments != res.WALSegments {
		t.Fatalf("last progress %+v (phases %v)", last, phases)
	}
	fi, _ := os.Stat(path)
	if fi.Size() != res.BytesWritten {
		t.Fatalf("file has %d bytes, result says %d", fi.Size(), res.BytesWritten)
	}

	list := pgtest.ListTar(t, path)
	firstWAL, lastData := checkLayout(t, list)
	if list[0].Name != "backup_label" && !strings.HasPrefix(list[0].Name, "pg_tblspc/") {
		t.Fatalf("first member %s", list[0].Name)
	}
	if firstWAL > lastData {
		t.Fatalf("no WAL segment was woven in before the last data member (first WAL at %d, last data at %d)", firstWAL, lastData)
	}
	checkOrigin(t, c, path)
	var sawControl bool
	for _, m := range list {
		sawControl = sawControl || m.Name == "global/pg_control"
		if sawControl && m.Name != "global/pg_control" && !strings.HasPrefix(m.Name, "pg_wal/") && m.Name != "backup_manifest" {
			t.Fatalf("data member %s after global/pg_control", m.Name)
		}
	}

	r := c.RestoreDrill(t, path, pgtest.Drill{Pgbench: true, Queries: map[string]string{
		"select count(*) from in_ts":                               "1234",
		"select count(*) from scratch":                             "0",
		"select count(*) from pg_tablespace where spcname = 'ts1'": "1",
	}})
	// The tablespace is an in-place one in the copy.
	if got := r.QueryValue(t, "select pg_tablespace_location(oid) like 'pg_tblspc/%' from pg_tablespace where spcname = 'ts1'"); got != "true" {
		t.Fatalf("tablespace location in the copy: %s", got)
	}
	assertNothingLeft(t, c)
}

// TestServerCompression: with ServerCompression the server sends lz4 or zstd frames (a tenth
// of the bytes for pgbench data, less with zstd), walweave decompresses them on the fly, and the stream is the same
// plain, woven tar: pg_verifybackup passes, PostgreSQL starts, the invariant holds, and the
// tablespace's archive (compressed on its own) comes back too.
func TestServerCompression(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{})
	c.SkipWithoutServerLZ4(t)
	c.CreateTablespace(t, "ts1")
	c.Exec(t, `create table in_ts (i int) tablespace ts1; insert into in_ts select generate_series(1, 4321);`)
	c.PgbenchInit(t, 5)
	load := c.StartLoad(t, 2)
	stop := walSwitcher(t, c, 300*time.Millisecond)

	var plain mux.Result
	for _, comp := range []string{"", "lz4", "lz4:3", "zstd:level=3,workers=2"} {
		cfg := mux.Config{ConnString: c.DSN(), Checkpoint: mux.CheckpointFast, ServerCompression: comp}
		path, res, err := backupToFile(t, context.Background(), nil, cfg)
		if err != nil {
			t.Fatalf("backup with server compression %q: %v", comp, err)
		}
		t.Logf("server compression %q: %d archive bytes received, %d written, %d data files", comp, res.ArchiveBytesReceived, res.BytesWritten, res.DataFiles)
		if comp == "" {
			plain = res
			if res.ArchiveBytesReceived < 50<<20 {
				t.Fatalf("plain backup received only %d archive bytes", res.ArchiveBytesReceived)
			}
			continue
		}
		if res.ArchiveBytesReceived*4 > plain.ArchiveBytesReceived {
			t.Fatalf("with %q the server sent %d bytes, the plain backup %d: not compressed", comp, res.ArchiveBytesReceived, plain.ArchiveBytesReceived)
		}
		// The load may add a file or two (a free space map, a new segment) between backups.
		if d := res.DataFiles - plain.DataFiles; d < -10 || d > 10 || res.Tablespaces != 1 {
			t.Fatalf("with %q: %d data files and %d tablespaces, plain: %d files", comp, res.DataFiles, res.Tablespaces, plain.DataFiles)
		}
		list := pgtest.ListTar(t, path) // plain tar: GNU tar lists it
		firstWAL, lastData := checkLayout(t, list)
		if firstWAL > lastData {
			t.Fatalf("no WAL woven in before the last data member (first WAL %d, last data %d)", firstWAL, lastData)
		}
		if comp == "zstd:level=3,workers=2" {
			stop()
			if err := load.Stop(); err != nil {
				t.Fatal(err)
			}
			c.RestoreDrill(t, path, pgtest.Drill{Pgbench: true, Queries: map[string]string{
				"select count(*) from in_ts": "4321",
			}})
		}
	}
	assertNothingLeft(t, c)
}

// slowWriter holds every write while paused is set, then writes at full speed.
type slowWriter struct {
	w      ioWriter
	paused chan struct{}
	writes atomic.Int64
}

func (s *slowWriter) Write(p []byte) (int, error) {
	s.writes.Add(1)
	<-s.paused
	return s.w.Write(p)
}

// pauseAtFirstWrite returns a paused slowWriter (its w still to be set) that, once its first
// write has begun, runs then on another goroutine and lets the writes through.
func pauseAtFirstWrite(then func()) *slowWriter {
	sw := &slowWriter{paused: make(chan struct{})}
	go func() {
		for sw.writes.Load() == 0 {
			time.Sleep(10 * time.Millisecond)
		}
		then()
		close(sw.paused)
	}()
	return sw
}

// TestSlowConsumer: the writer stalls far longer than wal_sender_timeout while WAL is made
// faster than it drains; the ring fills, the receiver keeps the connection alive, and the
// backup restores.
func TestSlowConsumer(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{Settings: map[string]string{"wal_sender_timeout": "2s"}})
	c.PgbenchInit(t, 1)
	load := c.StartLoad(t, 2)
	stop := walSwitcher(t, c, 250*time.Millisecond)
	sw := pauseAtFirstWrite(func() { time.Sleep(8 * time.Second); stop() })
	path, res, err := backupToFile(t, context.Background(), func(f *os.File) ioWriter { sw.w = f; return sw },
		mux.Config{ConnString: c.DSN(), Checkpoint: mux.CheckpointFast, RingSlots: 2})
	stop()
	_ = load.Stop()
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	t.Logf("result: %+v", res)
	if res.RingHighWater != 2 || res.WALBlocked < 3*time.Second {
		t.Fatalf("the ring should have filled and blocked the receiver: high water %d, blocked %v", res.RingHighWater, res.WALBlocked)
	}
	if strings.Contains(c.Log(), "replication timeout") {
		t.Fatalf("walsender timed out:\n%s", c.LogTail(20))
	}
	checkLayout(t, pgtest.ListTar(t, path))
	c.RestoreDrill(t, path, pgtest.Drill{Pgbench: true})
	assertNothingLeft(t, c)
}

// assertNothingLeft waits until the server has no replication slot and no walsender.
func assertNothingLeft(t *testing.T, c *pgtest.Cluster) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		slots := c.QueryValue(t, "select count(*) from pg_replication_slots")
		senders := c.QueryValue(t, "select count(*) from pg_stat_activity where backend_type = 'walsender'")
		backups := c.QueryValue(t, "select count(*) from pg_stat_progress_basebackup")
		if slots == "0" && senders == "0" && backups == "0" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("left on the server: %s slots, %s walsenders, %s base backups", slots, senders, backups)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type failingWriter struct {
	after int64
	n     int64
	err   error
}

func (f *failingWriter) Write(p []byte) (int, error) {
	if f.n+int64(len(p)) > f.after {
		return 0, f.err
	}
	f.n += int64(len(p))
	return len(p), nil
}

func TestFailures(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{})
	c.PgbenchInit(t, 3)

	t.Run("writer error", func(t *testing.T) {
		boom := errors.New("disk full (test)")
		_, err := mux.Backup(context.Background(), &failingWriter{after: 5 << 20, err: boom}, mux.Config{ConnString: c.DSN(), Checkpoint: mux.CheckpointFast})
		if !errors.Is(err, boom) || !strings.Contains(err.Error(), "output") {
			t.Fatalf("got %v, want the writer's error, attributed to the output", err)
		}
		assertNothingLeft(t, c)
	})

	for _, tc := range []struct {
		phase mux.Phase
		comp  string // ServerCompression
	}{{mux.PhaseConnecting, ""}, {mux.PhaseCheckpoint, ""}, {mux.PhaseStreaming, ""}, {mux.PhaseFinishing, ""}, {mux.PhaseStreaming, "lz4"}} {
		phase := tc.phase
		t.Run(withComp("cancel while "+string(phase), tc.comp), func(t *testing.T) {
			if tc.comp != "" {
				c.SkipWithoutServerLZ4(t)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var w failingWriter
			w.after = 1 << 40
			cfg := mux.Config{ConnString: c.DSN(), Checkpoint: mux.CheckpointFast, ProgressInterval: time.Millisecond, ServerCompression: tc.comp,
				Progress: func(p mux.Progress) {
					if p.Phase == phase {
						cancel()
					}
				}}
			start := time.Now()
			_, err := mux.Backup(ctx, &w, cfg)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("got %v, want context.Canceled", err)
			}
			if d := time.Since(start); d > 20*time.Second {
				t.Fatalf("cancel took %v", d)
			}
			assertNothingLeft(t, c)
		})
	}

	for _, tc := range []struct{ who, comp string }{{"backup", ""}, {"streaming", ""}, {"backup", "lz4"}} {
		who := tc.who
		t.Run(withComp("walsender terminated: "+who, tc.comp), func(t *testing.T) {
			if tc.comp != "" {
				c.SkipWithoutServerLZ4(t)
			}
			sw := &slowWriter{paused: make(chan struct{})}
			done := make(chan error, 1)
			go func() {
				defer close(sw.paused)
				for sw.writes.Load() == 0 {
					time.Sleep(10 * time.Millisecond)
				}
				q := fmt.Sprintf("select count(pg_terminate_backend(pid)) from pg_stat_replication where state = '%s'", who)
				for {
					n, err := c.QueryValueDB(context.Background(), "postgres", q)
					if err != nil || n != "0" {
						done <- err
						return
					}
					time.Sleep(20 * time.Millisecond)
				}
			}()
			var discard failingWriter
			discard.after = 1 << 40
			sw.w = &discard
			_, err := mux.Backup(context.Background(), sw, mux.Config{ConnString: c.DSN(), Checkpoint: mux.CheckpointFast, ServerCompression: tc.comp})
			if qerr := <-done; qerr != nil {
				t.Fatal(qerr)
			}
			if err == nil {
				t.Fatal("backup succeeded although a walsender was terminated")
			}
			t.Logf("error: %v", err)
			side := map[string]string{"backup": "base backup", "streaming": "WAL receiver"}[who]
			if !strings.Contains(err.Error(), side) {
				t.Fatalf("error should name the %s side: %v", side, err)
			}
			assertNothingLeft(t, c)
		})
	}
}

// corruptPage creates a table "victim", flips a byte inside page's tuples with the server
// stopped (the page checksum no longer matches), starts it again and returns the table's file
// path relative to the data directory.
func corruptPage(t *testing.T, c *pgtest.Cluster, page int) string {
	t.Helper()
	c.Exec(t, "create table victim (i int, pad text); insert into victim select g, repeat('x', 100) from generate_series(1, 1000) g; checkpoint")
	rel := c.QueryValue(t, "select pg_relation_filepath('victim')")
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(c.DataDir, rel)
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	b[page*8192+4000] ^= 0xff
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := c.StartAgain(); err != nil {
		t.Fatal(err)
	}
	return rel
}

// withComp names a subtest run with server compression.
func withComp(name, comp string) string {
	if comp == "" {
		return name
	}
	return name + ", server " + comp
}

// TestServerStoppedMidBackup: the server dies (immediate shutdown) while the first bytes are
// being written: the backup fails with an *mux.Error naming a server side (not the output),
// and what was written is an unfinished stream: no backup_manifest, no tar trailer.
func TestServerStoppedMidBackup(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{})
	c.PgbenchInit(t, 2)
	var out bytes.Buffer
	sw := pauseAtFirstWrite(c.Kill)
	sw.w = &out
	_, err := mux.Backup(context.Background(), sw, mux.Config{ConnString: c.DSN(), Checkpoint: mux.CheckpointFast})
	if err == nil {
		t.Fatal("backup succeeded although the server was stopped")
	}
	t.Logf("error: %v", err)
	var me *mux.Error
	if !errors.As(err, &me) || (me.Side != mux.SideBaseBackup && me.Side != mux.SideWAL) {
		t.Fatalf("error %v: want a *mux.Error naming the base backup or the WAL receiver", err)
	}
	// What was written is an unfinished stream: no manifest, and no end-of-archive marker where
	// a header would come (walweave verify's reading: zeros that end the written part inside a
	// member's data, as a relation's empty pages can, are not a trailer).
	b := out.Bytes()
	if out.Len() == 0 || bytes.Contains(b, []byte("PostgreSQL-Backup-Manifest-Version")) {
		t.Fatalf("the %d bytes written hold a manifest, or nothing", out.Len())
	}
	rep, err := verify.Stream(context.Background(), bytes.NewReader(b), verify.Options{SkipWAL: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || !strings.Contains(rep.String(), "truncated") {
		t.Fatalf("the %d bytes written are not an unfinished stream to walweave verify:\n%s", out.Len(), rep)
	}
	if err := c.StartAgain(); err != nil {
		t.Fatal(err)
	}
	assertNothingLeft(t, c)
}

func TestChecksumFailure(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{})
	rel := corruptPage(t, c, 0)
	path, _, err := backupToFile(t, context.Background(), nil, mux.Config{ConnString: c.DSN(), Checkpoint: mux.CheckpointFast})
	var ce *mux.ChecksumError
	if !errors.As(err, &ce) {
		t.Fatalf("got %v, want a *mux.ChecksumError", err)
	}
	if len(ce.Files) != 1 || !strings.HasSuffix(ce.Files[0], rel) {
		t.Fatalf("checksum error names %v, want %s", ce.Files, rel)
	}
	data, _ := os.ReadFile(path)
	if strings.Contains(string(data), "PostgreSQL-Backup-Manifest-Version") {
		t.Fatal("a failed backup's stream holds a manifest")
	}
	assertNothingLeft(t, c)

	// With verification off the backup succeeds.
	if _, _, err := backupToFile(t, context.Background(), nil, mux.Config{ConnString: c.DSN(), Checkpoint: mux.CheckpointFast, NoVerifyChecksums: true}); err != nil {
		t.Fatalf("backup without checksum verification: %v", err)
	}
}

func TestWriteRecoveryConfStandby(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{})
	c.Exec(t, "create table before_backup (i int); insert into before_backup values (1)")
	path, _, err := backupToFile(t, context.Background(), nil, mux.Config{ConnString: c.DSN(), Checkpoint: mux.CheckpointFast,
		WriteRecoveryConf: true, RecoveryConfPassword: true})
	if err != nil {
		t.Fatal(err)
	}
	r := c.RestoreDrill(t, path, pgtest.Drill{Queries: map[string]string{"select pg_is_in_recovery()": "true"}})
	c.Exec(t, "insert into before_backup values (2)")
	deadline := time.Now().Add(60 * time.Second)
	for r.QueryValue(t, "select count(*) from before_backup") != "2" {
		if time.Now().After(deadline) {
			t.Fatalf("the restored standby does not stream from the source: %s", r.LogTail(20))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := r.QueryValue(t, "select status from pg_stat_wal_receiver"); got != "streaming" {
		t.Fatalf("wal receiver status %q", got)
	}
}

func TestPasswordLeftOutOfRecoveryConf(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{})
	path, _, err := backupToFile(t, context.Background(), nil, mux.Config{ConnString: c.DSN(), Checkpoint: mux.CheckpointFast, WriteRecoveryConf: true})
	if err != nil {
		t.Fatal(err)
	}
	dir := c.Extract(t, path)
	conf, err := os.ReadFile(filepath.Join(dir, "postgresql.auto.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(conf), c.ReplPassword) || !strings.Contains(string(conf), "primary_conninfo = '") {
		t.Fatalf("postgresql.auto.conf:\n%s", conf)
	}
	if _, err := os.Stat(filepath.Join(dir, "standby.signal")); err != nil {
		t.Fatal(err)
	}
}

func TestTLSVerifyFull(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{TLS: true})
	dsn := strings.Replace(c.DSN(), "sslmode=require", "sslmode=verify-full sslrootcert="+c.CAFile, 1)
	dsn = strings.Replace(dsn, "host=127.0.0.1", "host=localhost", 1)
	path, _, err := backupToFile(t, context.Background(), nil, mux.Config{ConnString: dsn, Checkpoint: mux.CheckpointFast})
	if err != nil {
		t.Fatalf("backup over verify-full: %v", err)
	}
	c.RestoreDrill(t, path, pgtest.Drill{})

	other, _, err := pgtest.NewCA("other")
	if err != nil {
		t.Fatal(err)
	}
	wrong := filepath.Join(t.TempDir(), "wrong.crt")
	if err := os.WriteFile(wrong, other, 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err = backupToFile(t, context.Background(), nil, mux.Config{ConnString: strings.Replace(dsn, c.CAFile, wrong, 1)})
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("wrong CA: got %v", err)
	}
	assertNothingLeft(t, c)
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []mux.Config{
		{ConnString: "host=x", Checkpoint: "slow"},
		{ConnString: "host=x", ManifestChecksums: "MD5"},
		{ConnString: "host=x", MaxRate: -1},
		{ConnString: "host=x", RingSlots: -3},
		{ConnString: "host=x", ServerCompression: "gzip"},
		{ConnString: "host=x", ServerCompression: "zstd:3"},
		{ConnString: "host=x", ServerCompression: "lz4:13"},
		{ConnString: "host=x", ServerCompression: "lz4:fast"},
		{ConnString: "host=x", ServerCompression: "none:1"},
		{ConnString: "host=x", Jobs: 4, IncrementalFrom: []byte("{}")},
		{ConnString: "host=x", Jobs: 4, MaxRate: 1 << 20},
		{ConnString: "host=127.0.0.1 port=1 connect_timeout=2"},
	} {
		if _, err := mux.Backup(context.Background(), &failingWriter{after: 0, err: errors.New("no byte may be written")}, cfg); err == nil || strings.Contains(err.Error(), "no byte may be written") {
			t.Errorf("%+v: got %v", cfg, err)
		}
	}
}
