package mux_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walweave/walweave/internal/pgtest"
	"github.com/walweave/walweave/internal/source/sqlfetch"
	"github.com/walweave/walweave/mux"
	"github.com/walweave/walweave/restore"
	"github.com/walweave/walweave/source"
	"github.com/walweave/walweave/verify"
)

// grantJobs gives the test's replication role what --jobs needs (EXECUTE on the file and
// backup functions), except the functions in except.
func grantJobs(t *testing.T, c *pgtest.Cluster, except ...string) {
	t.Helper()
	for _, fn := range []string{
		"pg_backup_start(text, boolean)", "pg_backup_stop(boolean)", "pg_ls_dir(text, boolean, boolean)",
		"pg_stat_file(text, boolean)", "pg_read_binary_file(text, bigint, bigint, boolean)",
	} {
		skip := false
		for _, e := range except {
			skip = skip || strings.HasPrefix(fn, e+"(")
		}
		if !skip {
			c.Exec(t, "grant execute on function pg_catalog."+fn+" to "+pgtest.ReplicationUser)
		}
	}
}

// checkJobsLayout checks the order --jobs produces: backup_label after global/pg_control,
// the last data member, and before the manifest.
func checkJobsLayout(t *testing.T, list []pgtest.TarMember) {
	t.Helper()
	firstWAL, lastData := checkLayout(t, list)
	if firstWAL > lastData {
		t.Errorf("no WAL segment woven in before the last data member (first WAL %d, last data %d)", firstWAL, lastData)
	}
	if list[lastData].Name != "backup_label" {
		t.Errorf("last data member %s, want backup_label", list[lastData].Name)
	}
	ctl := -1
	for i, m := range list {
		if m.Name == "global/pg_control" {
			ctl = i
		}
	}
	if ctl < 0 || ctl > lastData {
		t.Errorf("global/pg_control at %d, backup_label at %d", ctl, lastData)
	}
}

func verifyStream(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rep, err := verify.Stream(context.Background(), f, verify.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Fatalf("walweave verify: %v", rep.Problems)
	}
}

// TestJobsRestoreDrill: --jobs 4 (files over SQL, 4 connections) under write load, with a
// tablespace, an unlogged table and a slow consumer; the stream restores (tar,
// pg_verifybackup with walweave's own manifest, start, invariant, amcheck) and walweave
// verify accepts it.
func TestJobsRestoreDrill(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{})
	grantJobs(t, c)
	_, tsLoc := c.CreateTablespace(t, "ts1")
	c.Exec(t, `create table in_ts (i int) tablespace ts1;
		insert into in_ts select generate_series(1, 1234);
		create unlogged table scratch (i int); insert into scratch select generate_series(1, 100);`)
	c.PgbenchInit(t, 5)
	load := c.StartLoad(t, 4)
	stop := walSwitcher(t, c, 300*time.Millisecond)

	sw := pauseAtFirstWrite(func() { time.Sleep(2 * time.Second) })
	var last mux.Progress
	cfg := mux.Config{ConnString: c.DSN(), Checkpoint: mux.CheckpointFast, Jobs: 4,
		Progress: func(p mux.Progress) { last = p }}
	path, res, err := backupToFile(t, context.Background(), func(f *os.File) ioWriter { sw.w = f; return sw }, cfg)
	stop()
	if err := load.Stop(); err != nil {
		t.Fatal(err)
	}
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	t.Logf("result: %+v", res)
	if res.StartLSN == 0 || res.EndLSN <= res.StartLSN || res.WALSegments == 0 || res.Tablespaces != 1 || res.ArchiveBytesReceived < 50<<20 {
		t.Fatalf("implausible result %+v", res)
	}
	if last.Phase != mux.PhaseDone || last.TotalBytes == 0 || last.BytesDone == 0 {
		t.Fatalf("last progress %+v", last)
	}
	checkJobsLayout(t, pgtest.ListTar(t, path))
	checkOrigin(t, c, path)
	verifyStream(t, path)
	r := c.RestoreDrill(t, path, pgtest.Drill{Pgbench: true, Queries: map[string]string{
		"select count(*) from in_ts":                               "1234",
		"select count(*) from scratch":                             "0",
		"select count(*) from pg_tablespace where spcname = 'ts1'": "1",
	}})
	if got := r.QueryValue(t, "select pg_tablespace_location(oid) like 'pg_tblspc/%' from pg_tablespace where spcname = 'ts1'"); got != "true" {
		t.Fatalf("tablespace location in the copy: %s", got)
	}
	r.Close()

	// walweave restore takes the stream too (backup_label last), relocating the tablespace.
	dir, err := c.NewDir("restored")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	target, tsDir := filepath.Join(dir, "data"), filepath.Join(dir, "ts1")
	if _, err := restore.Extract(context.Background(), f, restore.Options{Dir: target, NoSync: true,
		TablespaceMap: map[string]string{tsLoc: tsDir}}); err != nil {
		t.Fatalf("walweave restore: %v", err)
	}
	if err := pgtest.Chown(dir); err != nil {
		t.Fatal(err)
	}
	r2 := pgtest.StartOn(t, target, nil)
	if got := r2.QueryValue(t, "select count(*) from in_ts"); got != "1234" {
		t.Fatalf("restored with walweave restore: in_ts has %s rows", got)
	}
	if got := r2.QueryValue(t, "select pg_tablespace_location(oid) from pg_tablespace where spcname = 'ts1'"); got != tsDir {
		t.Fatalf("restored tablespace at %q, want %q", got, tsDir)
	}
	r2.Close()
	assertNothingLeft(t, c)
	if n := c.QueryValue(t, "select count(*) from pg_stat_activity where application_name = 'walweave'"); n != "0" {
		t.Fatalf("%s walweave sessions left", n)
	}
}

// TestJobsConcurrentDDL: a table dropped, a table truncated and a relation created while the
// files are read (the writer is held so that the listing is older than the changes); the
// restored copy is consistent and shows the state at the backup's end.
func TestJobsConcurrentDDL(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{})
	grantJobs(t, c)
	c.PgbenchInit(t, 3)
	c.Exec(t, `create table gone (i int, pad text); insert into gone select g, repeat('x', 200) from generate_series(1, 200000) g;
		create table cut (i int, pad text); insert into cut select g, repeat('y', 200) from generate_series(1, 200000) g;
		checkpoint;`)
	sw := &slowWriter{paused: make(chan struct{})}
	var once sync.Once
	ddl := make(chan error, 1)
	go func() {
		for sw.writes.Load() == 0 {
			time.Sleep(10 * time.Millisecond)
		}
		// The backup has started and listed its files; change them under it.
		err := c.ExecContext(context.Background(), `drop table gone; truncate cut; insert into cut values (42, 'kept');
			create table born (i int); insert into born select generate_series(1, 5000); select pg_switch_wal();`)
		ddl <- err
		once.Do(func() { close(sw.paused) })
	}()
	var logs pgtest.SyncBuffer
	path, res, err := backupToFile(t, context.Background(), func(f *os.File) ioWriter { sw.w = f; return sw },
		mux.Config{ConnString: c.DSN(), Checkpoint: mux.CheckpointFast, Jobs: 3, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	once.Do(func() { close(sw.paused) })
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	if err := <-ddl; err != nil {
		t.Fatal(err)
	}
	t.Logf("result: %+v", res)
	// The files of the dropped and the truncated table were listed before the change and read
	// after it: left out or zero-padded.
	m := regexp.MustCompile(`vanished=(\d+) zero_padded=(\d+)`).FindStringSubmatch(logs.String())
	if m == nil || m[1]+m[2] == "00" {
		t.Fatalf("no file vanished or shrank under the backup: %v\n%s", m, logs.String())
	}
	t.Logf("vanished %s, zero-padded %s", m[1], m[2])
	checkJobsLayout(t, pgtest.ListTar(t, path))
	verifyStream(t, path)
	c.RestoreDrill(t, path, pgtest.Drill{Pgbench: true, Queries: map[string]string{
		"select count(*) from pg_class where relname = 'gone'": "0",
		"select count(*) from cut":                             "1",
		"select i from cut":                                    "42",
		"select count(*) from born":                            "5000",
	}})
	assertNothingLeft(t, c)
}

// waitSetting waits until new sessions see a reloaded setting.
func waitSetting(t *testing.T, c *pgtest.Cluster, name, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for c.QueryValue(t, "select current_setting($1)", name) != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not become %s", name, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestJobsPreflight: a role missing one grant is told the GRANT it needs, before anything
// starts on the server or is written; full_page_writes off is refused the same way.
func TestJobsPreflight(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{})
	grantJobs(t, c, "pg_read_binary_file")
	var out strings.Builder
	_, err := mux.Backup(context.Background(), &out, mux.Config{ConnString: c.DSN(), Jobs: 2})
	var pe *sqlfetch.PrivilegeError
	if !errors.As(err, &pe) || !errors.Is(err, sqlfetch.ErrPrivileges) {
		t.Fatalf("err = %v, want a *sqlfetch.PrivilegeError", err)
	}
	t.Logf("error: %v", err)
	want := "GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean) TO walweave;"
	if len(pe.Grants) != 1 || pe.Grants[0] != want {
		t.Fatalf("grants %q, want [%s]", pe.Grants, want)
	}
	if out.Len() != 0 {
		t.Fatalf("%d bytes written before the preflight failed", out.Len())
	}
	// The GRANT it printed is the one that fixes it.
	c.Exec(t, strings.Replace(pe.Grants[0], "TO walweave", "TO "+pgtest.ReplicationUser, 1))

	c.Exec(t, "alter system set full_page_writes = off")
	c.Exec(t, "select pg_reload_conf()")
	waitSetting(t, c, "full_page_writes", "off")
	_, err = mux.Backup(context.Background(), &out, mux.Config{ConnString: c.DSN(), Jobs: 2})
	if !errors.Is(err, sqlfetch.ErrFullPageWrites) || out.Len() != 0 {
		t.Fatalf("full_page_writes off: err = %v, %d bytes written", err, out.Len())
	}
	c.Exec(t, "alter system reset full_page_writes")
	c.Exec(t, "select pg_reload_conf()")
	waitSetting(t, c, "full_page_writes", "on")

	// A standby is refused with a message that says what to do instead.
	sb := c.Standby(t)
	_, err = mux.Backup(context.Background(), &out, mux.Config{ConnString: sb.DSN(), Jobs: 2})
	if !errors.Is(err, sqlfetch.ErrStandby) || out.Len() != 0 {
		t.Fatalf("standby: err = %v, %d bytes written", err, out.Len())
	}
	t.Logf("standby: %v", err)
	sb.Close()
	if _, err := mux.Backup(context.Background(), &out, mux.Config{ConnString: c.DSN(), Jobs: 2, Checkpoint: mux.CheckpointFast}); err != nil {
		t.Fatalf("with the grant: %v", err)
	}
	assertNothingLeft(t, c)
}

// TestJobsChecksumFailure: a page whose checksum does not match (and whose LSN is older than
// the backup's start) fails a --jobs backup with the typed checksum error naming the file,
// as BASE_BACKUP's would; with verification off the backup succeeds.
func TestJobsChecksumFailure(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{})
	grantJobs(t, c)
	rel := corruptPage(t, c, 1)
	path, _, err := backupToFile(t, context.Background(), nil, mux.Config{ConnString: c.DSN(), Checkpoint: mux.CheckpointFast, Jobs: 2})
	var ce *source.ChecksumError
	if !errors.As(err, &ce) {
		t.Fatalf("got %v, want a *source.ChecksumError", err)
	}
	t.Logf("error: %v", err)
	if len(ce.Files) != 1 || !strings.HasSuffix(ce.Files[0], rel) || ce.Failures != 1 {
		t.Fatalf("checksum error names %v (%d failures), want %s once", ce.Files, ce.Failures, rel)
	}
	data, _ := os.ReadFile(path)
	if strings.Contains(string(data), "PostgreSQL-Backup-Manifest-Version") {
		t.Fatal("a failed backup's stream holds a manifest")
	}
	assertNothingLeft(t, c)
	if _, _, err := backupToFile(t, context.Background(), nil, mux.Config{ConnString: c.DSN(), Checkpoint: mux.CheckpointFast, Jobs: 2, NoVerifyChecksums: true}); err != nil {
		t.Fatalf("backup without checksum verification: %v", err)
	}
}

// TestJobsSameMembersAsBaseBackup: on an idle server with a tablespace, an unlogged table, a
// temporary file and leftovers BASE_BACKUP excludes, --jobs sends exactly the members
// BASE_BACKUP sends (its exclusions, read from the server's source for each version), and its
// manifest lists the same files with the same sizes.
func TestJobsSameMembersAsBaseBackup(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{})
	grantJobs(t, c)
	c.CreateTablespace(t, "ts1")
	c.Exec(t, `create table in_ts (i int) tablespace ts1; insert into in_ts select generate_series(1, 1000);
		create unlogged table scratch (i int) tablespace ts1; insert into scratch select generate_series(1, 100);
		create unlogged table scratch2 (i int); insert into scratch2 select generate_series(1, 100)`)
	c.PgbenchInit(t, 1)
	c.Exec(t, "checkpoint")
	for _, f := range []string{"postmaster.opts.x", "pg_internal.init.999", "global/pg_internal.init", "pg_replslot/junk", "pg_stat_tmp/junk"} {
		_ = os.WriteFile(filepath.Join(c.DataDir, f), []byte("x"), 0o600)
		_ = pgtest.Chown(filepath.Join(c.DataDir, f))
	}
	members := func(jobs int) map[string]int64 {
		path, _, err := backupToFile(t, context.Background(), nil, mux.Config{ConnString: c.DSN(), Checkpoint: mux.CheckpointFast, Jobs: jobs})
		if err != nil {
			t.Fatalf("jobs %d: %v", jobs, err)
		}
		list := map[string]int64{}
		for _, m := range pgtest.ListTar(t, path) {
			if !strings.HasPrefix(m.Name, "pg_wal/0") && m.Name != "backup_manifest" {
				list[m.Name] = m.Size
			}
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		rep, err := verify.Stream(context.Background(), f, verify.Options{})
		if err != nil || !rep.OK() {
			t.Fatalf("jobs %d: verify: %v %v", jobs, err, rep.Problems)
		}
		return list
	}
	bb := members(0)
	jb := members(4)
	for name, size := range bb {
		js, ok := jb[name]
		switch {
		case !ok:
			t.Errorf("BASE_BACKUP sends %s, --jobs does not", name)
		case js != size && !strings.HasPrefix(name, "pg_xact/") && !strings.HasPrefix(name, "pg_stat") && name != "backup_label" && name != "pg_logical/replorigin_checkpoint":
			t.Errorf("%s: %d bytes with --jobs, %d with BASE_BACKUP", name, js, size)
		}
	}
	for name := range jb {
		if _, ok := bb[name]; !ok {
			t.Errorf("--jobs sends %s, BASE_BACKUP does not", name)
		}
	}
	t.Logf("%d members each", len(bb))
}

// TestJobsManifestAlgorithms: walweave's manifest with SHA256 and with no checksums is what
// pg_verifybackup accepts, as with CRC32C.
func TestJobsManifestAlgorithms(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{})
	grantJobs(t, c)
	c.PgbenchInit(t, 1)
	for _, alg := range []string{"SHA256", "NONE"} {
		path, _, err := backupToFile(t, context.Background(), nil, mux.Config{ConnString: c.DSN(), Checkpoint: mux.CheckpointFast, Jobs: 2, ManifestChecksums: alg})
		if err != nil {
			t.Fatalf("%s: %v", alg, err)
		}
		verifyStream(t, path)
		c.VerifyBackup(t, c.Extract(t, path))
	}
}

// TestJobsFailures: a writer that fails, a cancelled context and connections reset by the
// network end a --jobs backup promptly with an error; no session, slot or walsender is left,
// and the next backup runs.
func TestJobsFailures(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{})
	grantJobs(t, c)
	c.PgbenchInit(t, 3)
	left := func() {
		t.Helper()
		assertNothingLeft(t, c)
		deadline := time.Now().Add(10 * time.Second)
		for c.QueryValue(t, "select count(*) from pg_stat_activity where application_name = 'walweave'") != "0" {
			if time.Now().After(deadline) {
				t.Fatal("walweave sessions left on the server")
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	boom := errors.New("disk full (test)")
	_, err := mux.Backup(context.Background(), &failingWriter{after: 5 << 20, err: boom}, mux.Config{ConnString: c.DSN(), Checkpoint: mux.CheckpointFast, Jobs: 4})
	if !errors.Is(err, boom) {
		t.Fatalf("writer failure: %v", err)
	}
	left()

	ctx, cancel := context.WithCancel(context.Background())
	sw := pauseAtFirstWrite(cancel)
	sw.w = &failingWriter{after: 1 << 40}
	start := time.Now()
	_, err = mux.Backup(ctx, sw, mux.Config{ConnString: c.DSN(), Checkpoint: mux.CheckpointFast, Jobs: 4})
	if !errors.Is(err, context.Canceled) || time.Since(start) > 20*time.Second {
		t.Fatalf("cancelled: %v after %v", err, time.Since(start))
	}
	left()

	p, dsn := proxyTo(t, c)
	addToxic(t, p, `{"name":"bw","type":"bandwidth","stream":"downstream","toxicity":1,"attributes":{"rate":5000}}`)
	go func() {
		time.Sleep(1500 * time.Millisecond)
		p.Stop() // closes the live connections too
	}()
	start = time.Now()
	_, err = mux.Backup(context.Background(), &failingWriter{after: 1 << 40}, mux.Config{ConnString: dsn, Checkpoint: mux.CheckpointFast, Jobs: 4})
	if err == nil || time.Since(start) > 30*time.Second {
		t.Fatalf("reset: %v after %v", err, time.Since(start))
	}
	t.Logf("reset: %v after %v", err, time.Since(start).Round(time.Millisecond))
	left()

	if _, _, err := backupToFile(t, context.Background(), nil, mux.Config{ConnString: c.DSN(), Checkpoint: mux.CheckpointFast, Jobs: 4}); err != nil {
		t.Fatalf("backup after the failures: %v", err)
	}
}

// TestJobsStalledWriter: the output stops taking bytes for several times the TCP user timeout
// while the readers have queries in flight. A reader leaves a result in its socket until the
// writer is near it (sqlfetch's read-ahead), but not for long: were the results left there
// while the writer stalls, the server's kernel would end each reader's connection once its
// zero window outlasted tcp_user_timeout. The backup completes and verifies.
func TestJobsStalledWriter(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{})
	grantJobs(t, c)
	c.Exec(t, "create table t as select g, md5(g::text) as m from generate_series(1, 600000) g")
	c.Exec(t, "checkpoint")
	sw := pauseAtFirstWrite(func() { time.Sleep(8 * time.Second) })
	path, res, err := backupToFile(t, context.Background(), func(f *os.File) ioWriter { sw.w = f; return sw },
		mux.Config{ConnString: c.DSN(), Checkpoint: mux.CheckpointFast, Jobs: 3, TCPUserTimeout: 2 * time.Second})
	if err != nil {
		t.Fatalf("backup with the output stalled for 8 s, TCP user timeout 2 s: %v", err)
	}
	t.Logf("%d bytes", res.BytesWritten)
	checkLayout(t, pgtest.ListTar(t, path))
	verifyStream(t, path)
	assertNothingLeft(t, c)
}
