package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/walweave/walweave/internal/pgtest"
	"github.com/walweave/walweave/pgformat"
)

// startIncremental starts a 17+ cluster with WAL summarization (skips on older servers).
func startIncremental(t *testing.T) *pgtest.Cluster {
	t.Helper()
	if s, err := pgtest.Selected(); err == nil && s.Major < 17 {
		t.Skipf("incremental backups need PostgreSQL 17+; %s selected (set WALWEAVE_PG=17 or 18)", s)
	}
	return pgtest.Start(t, pgtest.Options{Settings: map[string]string{"summarize_wal": "on"}})
}

// backupCLI runs walweave backup into path with extra flags and fails the test on error.
func backupCLI(t *testing.T, c *pgtest.Cluster, path string, flags ...string) {
	t.Helper()
	args := append([]string{"backup", "-d", c.DSN(), "-c", "fast", "-o", path}, flags...)
	if _, stderr, code := walweave(t, context.Background(), nil, args...); code != 0 {
		t.Fatalf("walweave %s: exit %d: %s", strings.Join(args, " "), code, stderr)
	}
}

func fileSize(t *testing.T, p string) int64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// dataBytes is the size of a stream's data files: WAL and the manifest left out.
func dataBytes(t *testing.T, path string) int64 {
	t.Helper()
	var n int64
	for _, m := range pgtest.ListTar(t, path) {
		if !strings.HasPrefix(m.Name, "pg_wal/") && m.Name != "backup_manifest" {
			n += m.Size
		}
	}
	return n
}

// fifos makes a named pipe per file, each fed with the file's bytes from a goroutine, so that
// the restore reads every stream from a pipe.
func fifos(t *testing.T, files ...string) []string {
	t.Helper()
	dir := t.TempDir()
	var out []string
	for i, f := range files {
		p := filepath.Join(dir, fmt.Sprintf("pipe%d", i))
		if err := syscall.Mkfifo(p, 0o600); err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
		go func(src, dst string) {
			w, err := os.OpenFile(dst, os.O_WRONLY, 0)
			if err != nil {
				return
			}
			defer w.Close()
			r, err := os.Open(src)
			if err != nil {
				return
			}
			defer r.Close()
			_, _ = io.Copy(w, r)
		}(f, p)
	}
	return out
}

// digest is a logical dump of every database of c: the schema of every table (columns,
// indexes, tablespace) and the md5 of its rows in a fixed order. pg_dump 15 (the installed
// client) refuses 17+ servers, so the comparison is made with SQL.
func digest(t *testing.T, c *pgtest.Cluster) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	dbs, err := c.QueryValueDB(ctx, "postgres", "select string_agg(datname, ',' order by datname) from pg_database where datallowconn")
	if err != nil {
		t.Fatal(err)
	}
	for _, db := range strings.Split(dbs, ",") {
		schema, err := c.QueryValueDB(ctx, db, `select string_agg(x, E'\n' order by x) from (
			select format('%s.%s %s %s', table_name, column_name, data_type, ordinal_position) x from information_schema.columns where table_schema = 'public'
			union all select indexdef from pg_indexes where schemaname = 'public'
			union all select format('%s in %s', c.relname, coalesce(t.spcname, 'default')) from pg_class c left join pg_tablespace t on t.oid = c.reltablespace
				where c.relnamespace = 'public'::regnamespace) s`)
		if err != nil {
			t.Fatal(err)
		}
		out[db+" schema"] = schema
		tables, err := c.QueryValueDB(ctx, db, "select string_agg(quote_ident(relname), ',' order by relname) from pg_class where relkind = 'r' and relnamespace = 'public'::regnamespace")
		if err != nil {
			t.Fatal(err)
		}
		if tables == "" {
			continue
		}
		for _, tb := range strings.Split(tables, ",") {
			v, err := c.QueryValueDB(ctx, db, fmt.Sprintf("select count(*) || ' ' || coalesce(md5(string_agg(t::text, '|' order by t::text)), '') from %s t", tb))
			if err != nil {
				t.Fatal(err)
			}
			out[db+"."+tb] = v
		}
	}
	return out
}

// checkManifest checks the restored directory's regenerated backup_manifest: its checksum,
// every file listed with its size and CRC32C, every file of the directory listed (but
// pg_wal and pg_verifybackup's ignored files), and the same files as the newest backup's
// manifest (newestManifest) once its INCREMENTAL names are mapped back.
func checkManifest(t *testing.T, dir, newestManifest string) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "backup_manifest"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := pgformat.ParseManifest(raw)
	if err != nil {
		t.Fatalf("regenerated manifest: %v", err)
	}
	listed := map[string]bool{}
	for _, f := range m.Files {
		listed[f.Path] = true
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(f.Path)))
		if err != nil {
			t.Fatalf("manifest lists %s: %v", f.Path, err)
		}
		if int64(len(b)) != f.Size {
			t.Fatalf("%s: %d bytes, manifest says %d", f.Path, len(b), f.Size)
		}
		h, _ := pgformat.NewChecksum(f.Algorithm)
		h.Write(b)
		if got := pgformat.ChecksumHex(h); got != f.Checksum {
			t.Fatalf("%s: checksum %s, manifest says %s", f.Path, got, f.Checksum)
		}
	}
	ignored := func(p string) bool {
		for _, ig := range []string{"backup_manifest", "pg_wal", "postgresql.auto.conf", "recovery.signal", "standby.signal"} {
			if p == ig || strings.HasPrefix(p, ig+"/") {
				return true
			}
		}
		return false
	}
	err = filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if fi.Mode().IsRegular() && !ignored(rel) && !listed[rel] {
			return fmt.Errorf("%s is on disk but not in the regenerated manifest", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var streamFiles []string
	newest, err := os.ReadFile(newestManifest)
	if err != nil {
		t.Fatal(err)
	}
	nm, err := pgformat.ParseManifest(newest)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range nm.Files {
		p := f.Path
		if rel, ok := pgformat.IsIncrementalName(p); ok {
			p = rel
		}
		streamFiles = append(streamFiles, p)
	}
	var ours []string
	for _, f := range m.Files {
		ours = append(ours, f.Path)
	}
	sort.Strings(streamFiles)
	sort.Strings(ours)
	if strings.Join(ours, "\n") != strings.Join(streamFiles, "\n") {
		t.Fatalf("the regenerated manifest lists %d files, the newest backup's %d (INCREMENTAL names mapped back)", len(ours), len(streamFiles))
	}
	if m.SystemIdentifier != nm.SystemIdentifier || m.StartLSN() != nm.StartLSN() || m.EndLSN() != nm.EndLSN() {
		t.Fatalf("regenerated manifest: system %d, WAL %s..%s; newest backup: system %d, WAL %s..%s",
			m.SystemIdentifier, m.StartLSN(), m.EndLSN(), nm.SystemIdentifier, nm.StartLSN(), nm.EndLSN())
	}
	t.Logf("regenerated manifest: %d files, sizes and CRC32C match the restored files; same files as the newest backup's manifest", len(m.Files))
}

// TestIncrementalChainDrill is the acceptance drill of incremental backups (PostgreSQL 17+): a full backup,
// pgbench load, incremental 1, more load plus DDL (a dropped table, a truncated table, a
// VACUUM that truncates, a new database, a dropped database, a table moved to a new
// tablespace), incremental 2 under load, incremental 3 with writes stopped; both chains
// restored from pipes, started and checked; broken chains refused.
func TestIncrementalChainDrill(t *testing.T) {
	c := startIncremental(t)
	ctx := context.Background()
	dir := t.TempDir()
	c.PgbenchInit(t, 5)
	_, ts1Loc := c.CreateTablespace(t, "ts1")
	c.Exec(t, "create table in_ts1 tablespace ts1 as select g, md5(g::text) v from generate_series(1, 50000) g")
	c.Exec(t, "create table drop_me as select g from generate_series(1, 10000) g")
	c.Exec(t, "create table trunc_me as select g, repeat('t', 100) pad from generate_series(1, 20000) g")
	// vac_me changes size only by the test's VACUUM: autovacuum truncating it later (on the
	// source, after its size was read) made the restored copy's size differ from the one read.
	c.Exec(t, "create table vac_me with (autovacuum_enabled = off) as select g, repeat('v', 200) pad from generate_series(1, 40000) g")
	c.Exec(t, "create table move_me as select g, md5(g::text) v from generate_series(1, 30000) g")
	c.Exec(t, "create database dropped_db")
	if err := c.ExecDB(ctx, "dropped_db", "create table x as select generate_series(1, 1000) g"); err != nil {
		t.Fatal(err)
	}
	// Most of a big database is cold: a table no load touches.
	c.Exec(t, "create table cold as select g, md5(g::text) || md5((g + 1)::text) pad from generate_series(1, 1200000) g")
	c.Exec(t, "vacuum (freeze, analyze)")
	c.Exec(t, "checkpoint")

	full, inc1, inc2, inc3 := filepath.Join(dir, "full.tar.zst"), filepath.Join(dir, "inc1.tar"), filepath.Join(dir, "inc2.tar"), filepath.Join(dir, "inc3.tar.lz4")
	fullTar := filepath.Join(dir, "full.tar")
	backupCLI(t, c, fullTar, "--manifest-out", filepath.Join(dir, "full.manifest"))
	if out, err := exec.Command("zstd", "-q", "-1", fullTar, "-o", full).CombinedOutput(); err != nil {
		t.Fatalf("zstd: %v %s", err, out)
	}

	load := c.StartLoad(t, 2)
	time.Sleep(2 * time.Second)
	if err := load.Stop(); err != nil {
		t.Fatal(err)
	}
	// --manifest-out wrote the stream's manifest, byte for byte.
	if m, err := exec.Command("tar", "-xOf", fullTar, "backup_manifest").Output(); err != nil {
		t.Fatal(err)
	} else if out, _ := os.ReadFile(filepath.Join(dir, "full.manifest")); string(out) != string(m) {
		t.Fatal("--manifest-out differs from the stream's backup_manifest")
	}
	// PRIOR as the zstd-compressed full stream (inc2: a plain stream; inc3: a manifest file).
	backupCLI(t, c, inc1, "--incremental", full, "--manifest-out", filepath.Join(dir, "inc1.manifest"))

	// The VACUUM runs before the load starts: a load transaction's snapshot would keep the
	// deleted rows, and the file would not shrink (the incremental must carry the truncation).
	c.Exec(t, "delete from vac_me where g > 1000")
	c.Exec(t, "vacuum vac_me")
	load = c.StartLoad(t, 2)
	_, _ = c.CreateTablespace(t, "ts2")
	c.Exec(t, "drop table drop_me")
	c.Exec(t, "truncate trunc_me")
	c.Exec(t, "create database new_db")
	if err := c.ExecDB(ctx, "new_db", "create table n as select g, md5(g::text) v from generate_series(1, 5000) g"); err != nil {
		t.Fatal(err)
	}
	c.Exec(t, "drop database dropped_db")
	c.Exec(t, "alter table move_me set tablespace ts2")
	c.Exec(t, "update in_ts1 set v = 'changed' where g % 100 = 0")
	vacBlocks := c.QueryValue(t, "select pg_relation_size('vac_me') / current_setting('block_size')::int")
	t.Logf("vac_me is %s blocks after VACUUM", vacBlocks)
	time.Sleep(2 * time.Second)
	// Incremental 2 under load; PRIOR as the stream of incremental 1.
	backupCLI(t, c, inc2, "--incremental", inc1, "--manifest-out", filepath.Join(dir, "inc2.manifest"))
	if err := load.Stop(); err != nil {
		t.Fatal(err)
	}
	// Writes stopped: incremental 3 is the point the source is compared at.
	inc3Tar := filepath.Join(dir, "inc3.tar")
	backupCLI(t, c, inc3Tar, "--incremental", filepath.Join(dir, "inc2.manifest"), "--manifest-out", filepath.Join(dir, "inc3.manifest"))
	if out, err := exec.Command("lz4", "-q", inc3Tar, inc3).CombinedOutput(); err != nil {
		t.Fatalf("lz4: %v %s", err, out)
	}
	want := digest(t, c)

	fs, fdata := fileSize(t, fullTar), dataBytes(t, fullTar)
	for _, p := range []string{inc1, inc2, inc3Tar} {
		is, idata := fileSize(t, p), dataBytes(t, p)
		t.Logf("%s: %d bytes = %.1f%% of the full backup's %d bytes; without WAL: %d bytes = %.1f%% of %d",
			filepath.Base(p), is, 100*float64(is)/float64(fs), fs, idata, 100*float64(idata)/float64(fdata), fdata)
	}

	// walweave verify on each stream and on the chain.
	for _, p := range []string{fullTar, inc1, inc2, inc3} {
		if out, stderr, code := walweave(t, ctx, nil, "verify", p); code != 0 {
			t.Fatalf("walweave verify %s: exit %d\n%s%s", p, code, out, stderr)
		}
	}
	out, stderr, code := walweave(t, ctx, nil, "verify", full, inc1, inc2, inc3)
	if code != 0 || !strings.Contains(out, "chain: OK") {
		t.Fatalf("walweave verify chain: exit %d\n%s%s", code, out, stderr)
	}
	t.Logf("walweave verify chain:\n%s", out)

	// Broken chains are refused, by verify and by restore.
	other := startIncremental(t)
	otherFull, otherInc := filepath.Join(dir, "other-full.tar"), filepath.Join(dir, "other-inc.tar")
	backupCLI(t, other, otherFull, "--manifest-out", filepath.Join(dir, "other.manifest"))
	backupCLI(t, other, otherInc, "--incremental", filepath.Join(dir, "other.manifest"))
	for _, bad := range []struct {
		name  string
		files []string
	}{
		{"wrong order", []string{full, inc2, inc1}},
		{"missing middle", []string{full, inc2}},
		{"another system", []string{full, otherInc}},
		{"incremental first", []string{inc1, inc2}},
	} {
		out, _, code := walweave(t, ctx, nil, append([]string{"verify"}, bad.files...)...)
		if code == 0 || !strings.Contains(out, "chain: FAILED") {
			t.Errorf("%s: walweave verify exit %d\n%s", bad.name, code, out)
		}
		rdir := filepath.Join(dir, "bad-"+strings.ReplaceAll(bad.name, " ", "-"))
		_, stderr, code := walweave(t, ctx, nil, append([]string{"restore", "-D", rdir, "--no-sync"}, bad.files...)...)
		if code == 0 || !strings.Contains(stderr, "chain") {
			t.Errorf("%s: walweave restore exit %d: %s", bad.name, code, stderr)
		}
		if _, err := os.Stat(rdir); err == nil {
			t.Errorf("%s: the failed restore left %s", bad.name, rdir)
		}
		t.Logf("%s refused: %s", bad.name, strings.TrimSpace(stderr))
	}

	// A chain restore that stops midway (inc2 cut short, --no-clean) leaves a directory
	// PostgreSQL refuses, with a file saying why.
	{
		b, err := os.ReadFile(inc2)
		if err != nil {
			t.Fatal(err)
		}
		cut := filepath.Join(dir, "inc2-cut.tar")
		if err := os.WriteFile(cut, b[:len(b)/2], 0o600); err != nil {
			t.Fatal(err)
		}
		base, err := c.NewDir("cut")
		if err != nil {
			t.Fatal(err)
		}
		rdir := filepath.Join(base, "data")
		if _, stderr, code := walweave(t, ctx, nil, "restore", "-D", rdir, "--no-clean", "--no-sync", full, inc1, cut); code == 0 {
			t.Fatal("a chain with a truncated stream was restored")
		} else {
			t.Logf("truncated inc2: %s", strings.TrimSpace(stderr))
		}
		marker, err := os.ReadFile(filepath.Join(rdir, "walweave_restore_incomplete"))
		if err != nil {
			t.Fatalf("no marker after a failed chain restore: %v", err)
		}
		t.Logf("marker: %s", marker)
		if err := pgtest.Chown(base); err != nil {
			t.Fatal(err)
		}
		sctx, cancel := context.WithTimeout(ctx, time.Minute)
		out, err := c.Command(sctx, "postgres", "-D", rdir, "-p", "1", "-c", "listen_addresses=", "-k", base).CombinedOutput()
		cancel()
		if err == nil || !strings.Contains(string(out), "incremental backup") {
			t.Fatalf("PostgreSQL on the half-restored directory: %v\n%s", err, out)
		}
		for _, l := range strings.Split(string(out), "\n") {
			if strings.Contains(l, "FATAL") {
				t.Logf("PostgreSQL refuses it: %s", l)
			}
		}
	}

	// Restore full + inc1 + inc2 (the last taken under load) from pipes; it must start,
	// reach consistency and pass pgbench's invariant and pg_amcheck.
	for _, chain := range []struct {
		name     string
		files    []string
		manifest string
		compare  bool
	}{
		{"to inc2 (under load)", []string{full, inc1, inc2}, filepath.Join(dir, "inc2.manifest"), false},
		{"to inc3 (writes stopped)", []string{full, inc1, inc2, inc3}, filepath.Join(dir, "inc3.manifest"), true},
	} {
		t.Run(chain.name, func(t *testing.T) {
			base, err := c.NewDir("chain")
			if err != nil {
				t.Fatal(err)
			}
			rdir := filepath.Join(base, "data")
			start := time.Now()
			// Every stream through a named pipe, the second one on standard input ("-").
			// The chain to inc2 relocates ts1 (-T), the other keeps it in place.
			args := []string{"restore", "-D", rdir}
			ts1New := filepath.Join(base, "ts1-new")
			if !chain.compare {
				args = append(args, "-T", ts1Loc+"="+ts1New)
			}
			args = append(args, fifos(t, chain.files...)...)
			args[len(args)-len(chain.files)+1] = "-"
			stdin, err := os.Open(chain.files[1])
			if err != nil {
				t.Fatal(err)
			}
			defer stdin.Close()
			cmd := exec.CommandContext(ctx, binary, args...)
			var so, se strings.Builder
			cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &so, &se
			err = cmd.Run()
			out := so.String()
			if err != nil {
				t.Fatalf("walweave %s: %v\n%s%s", strings.Join(args, " "), err, out, se.String())
			}
			t.Logf("restored in %s:\n%s", time.Since(start).Round(time.Millisecond), out)
			if _, err := os.Stat(filepath.Join(rdir, "walweave_restore_incomplete")); err == nil {
				t.Fatal("the marker is still there")
			}
			if label, _ := os.ReadFile(filepath.Join(rdir, "backup_label")); strings.Contains(string(label), "INCREMENTAL") {
				t.Fatalf("backup_label keeps its INCREMENTAL lines:\n%s", label)
			}
			checkManifest(t, rdir, chain.manifest)
			// PostgreSQL's own check of the restored directory and its regenerated manifest
			// (pg_verifybackup of the server's version, WAL included: 17's and 18's are built
			// from Debian's source; a missing one fails under WALWEAVE_REQUIRE_PG=1).
			if v := c.VerifyBackup(t, rdir); v != "" {
				t.Logf("pg_verifybackup on the restored chain: %s", strings.TrimSpace(v))
			}
			r := pgtest.StartOn(t, rdir, nil)
			r.Password, r.ReplPassword = c.Password, c.ReplPassword
			r.CheckCopy(t, true, nil)
			if got := r.QueryValue(t, "select count(*) from pg_database where datname = 'dropped_db'"); got != "0" {
				t.Fatal("dropped_db is back")
			}
			if got := r.QueryValue(t, "select to_regclass('drop_me') is null"); got != "true" {
				t.Fatal("drop_me is back")
			}
			if got := r.QueryValue(t, "select count(*) from trunc_me"); got != "0" {
				t.Fatalf("trunc_me has %s rows", got)
			}
			if got := r.QueryValue(t, "select count(*) from vac_me"); got != "1000" {
				t.Fatalf("vac_me has %s rows", got)
			}
			if got := r.QueryValue(t, "select pg_relation_size('vac_me') / current_setting('block_size')::int"); got != vacBlocks {
				t.Errorf("vac_me is %s blocks, %s on the source", got, vacBlocks)
			}
			if !chain.compare {
				if got := r.QueryValue(t, "select pg_tablespace_location(oid) from pg_tablespace where spcname = 'ts1'"); got != ts1New {
					t.Fatalf("ts1 is at %q, want %q", got, ts1New)
				}
			}
			if got := r.QueryValue(t, "select count(*) from in_ts1 where v = 'changed'"); got != "500" {
				t.Fatalf("in_ts1 has %s changed rows", got)
			}
			if got := r.QueryValue(t, "select t.spcname from pg_class c join pg_tablespace t on t.oid = c.reltablespace where c.relname = 'move_me'"); got != "ts2" {
				t.Fatalf("move_me is in %q", got)
			}
			if chain.compare {
				got := digest(t, r)
				for k, v := range want {
					if got[k] != v {
						t.Errorf("%s: restored %q, source %q", k, got[k], v)
					}
				}
				if len(got) != len(want) {
					t.Errorf("restored copy has %d digests, the source %d", len(got), len(want))
				}
				t.Logf("logical dump of %d tables and schemas equal to the source's", len(want))
			}
		})
	}
}
