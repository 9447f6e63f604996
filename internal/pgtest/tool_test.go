package pgtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fakeInstall makes a bin directory holding the named programs (empty files: pickTool looks at
// which programs a directory has, the versions come with the Server).
func fakeInstall(t *testing.T, major int, programs ...string) Server {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "bin")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range programs {
		if err := os.WriteFile(filepath.Join(dir, p), nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return Server{BinDir: dir, Major: major, Num: major * 10000, Version: strconv.Itoa(major)}
}

// TestPickTool: each program comes from an installation that can read the server's files.
// With PostgreSQL 18's full build and a client-only 17 installed beside Debian's 15, a
// version-bound program (pg_verifybackup, pg_waldump, pg_combinebackup) is the server's own
// version's or none; a client program is the server's own, else the oldest newer one, else
// the newest older one. This is what failed 16's drills once 18 was installed: the newest
// pg_verifybackup was taken for every server.
func TestPickTool(t *testing.T) {
	full := []string{"postgres", "psql", "pgbench", "pg_amcheck", "pg_basebackup", "pg_verifybackup", "pg_waldump", "pg_combinebackup"}
	pg18 := fakeInstall(t, 18, full...)
	pg17 := fakeInstall(t, 17, "pg_verifybackup", "pg_waldump", "pg_combinebackup")
	pg15 := fakeInstall(t, 15, full...)
	inst := []Server{pg18, pg17, pg15} // newest first, as Installed lists them
	matrix16 := fakeInstall(t, 16, "postgres", "initdb", "pg_ctl")
	matrix17 := fakeInstall(t, 17, "postgres", "initdb", "pg_ctl")
	matrix18 := fakeInstall(t, 18, "postgres", "initdb", "pg_ctl")

	for _, tc := range []struct {
		name    string
		srv     Server
		inst    []Server
		program string
		want    string // bin dir, "" for none
	}{
		{"15's own pg_verifybackup", pg15, inst, "pg_verifybackup", pg15.BinDir},
		{"15's own pg_basebackup", pg15, inst, "pg_basebackup", pg15.BinDir},
		{"16: no pg_verifybackup of its version", matrix16, inst, "pg_verifybackup", ""},
		{"16: no pg_waldump of its version", matrix16, inst, "pg_waldump", ""},
		{"16: pg_basebackup from the oldest newer client", matrix16, inst, "pg_basebackup", pg18.BinDir},
		{"16: psql from the oldest newer client", matrix16, inst, "psql", pg18.BinDir},
		{"16: initdb its own", matrix16, inst, "initdb", matrix16.BinDir},
		{"17: pg_verifybackup of the same major installed", matrix17, inst, "pg_verifybackup", pg17.BinDir},
		{"17: pg_combinebackup of the same major", matrix17, inst, "pg_combinebackup", pg17.BinDir},
		{"17: pgbench from 18 (17's install has none)", matrix17, inst, "pgbench", pg18.BinDir},
		{"18 (the matrix's build): 18's installed pg_verifybackup", matrix18, inst, "pg_verifybackup", pg18.BinDir},
		{"17 with only 15 installed: no pg_verifybackup", matrix17, []Server{pg15}, "pg_verifybackup", ""},
		{"17 with only 15 installed: 15's pg_basebackup (it refuses 17)", matrix17, []Server{pg15}, "pg_basebackup", pg15.BinDir},
		{"16 with 15 and 18: the oldest newer, 18, not the newest older", matrix16, []Server{pg18, pg15}, "pg_amcheck", pg18.BinDir},
		{"nothing installed", matrix16, nil, "psql", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := pickTool(tc.srv, tc.program, tc.inst)
			if tc.want == "" {
				if ok {
					t.Fatalf("%s for %d: got %s, want none", tc.program, tc.srv.Major, got.BinDir)
				}
				return
			}
			if !ok || got.BinDir != tc.want {
				t.Fatalf("%s for %d: got %q (ok %v), want %q", tc.program, tc.srv.Major, got.BinDir, ok, tc.want)
			}
		})
	}
}

// TestOracle: on the selected server, the pg_verifybackup the drills run is the server's own
// version's where OracleSetup names one (a missing one fails under WALWEAVE_REQUIRE_PG=1,
// inside PGVerifyBackup), it accepts a real backup, and it rejects the same backup with one
// byte of a data file changed: the oracle can fail. From 17, every other installed version's
// pg_verifybackup must refuse the backup (which is why only the server's own is an oracle).
func TestOracle(t *testing.T) {
	c := Start(t, Options{})
	path, args, ok := c.PGVerifyBackup(t)
	if _, named := OracleSetup[c.Version]; named && ok {
		if v, err := probeProgram(filepath.Dir(path), "pg_verifybackup"); err != nil || v.Major != c.Version || len(args) != 0 {
			t.Fatalf("pg_verifybackup for %s: %s %v (version %v, %v), want the server's own version's, without -n", c.Server, path, args, v.Version, err)
		}
	}
	c.Exec(t, "create table oracle (i int); insert into oracle select generate_series(1, 1000)")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := c.NewDir("tarbackup")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.TarBackup(ctx, out, TarBackupOptions{WAL: true}); err != nil {
		t.Fatal(err)
	}
	dir := c.Extract(t, filepath.Join(out, "base.tar"))
	if err := os.Rename(filepath.Join(out, "backup_manifest"), filepath.Join(dir, "backup_manifest")); err != nil {
		t.Fatal(err)
	}
	if err := Chown(dir); err != nil {
		t.Fatal(err)
	}
	if c.Version >= 17 {
		// Another version's pg_verifybackup refuses 17+'s backup: an older one its manifest
		// (version 2), a newer one its pg_control. If one ever accepts it, this says so.
		for _, s := range Installed() {
			p := filepath.Join(s.BinDir, "pg_verifybackup")
			if s.Major == c.Version || !fileExists(p) {
				continue
			}
			o, err := c.Run(ctx, p, "-n", dir)
			if err == nil || !strings.Contains(o, "global/pg_control") && !strings.Contains(o, "manifest version") {
				t.Fatalf("pg_verifybackup %s on %s's backup: %v, want a refusal of its pg_control or manifest:\n%s", s.Version, c.Server, err, o)
			}
			t.Logf("pg_verifybackup %s refuses %s's backup: %s", s.Version, c.Server, strings.TrimSpace(o))
		}
	}
	if !ok {
		return
	}
	t.Logf("oracle for %s: %s %s", c.Server, path, strings.Join(args, " "))
	t.Logf("pg_verifybackup: %s", strings.TrimSpace(c.VerifyBackup(t, dir)))

	rel := c.QueryValue(t, "select pg_relation_filepath('oracle')")
	f, err := os.OpenFile(filepath.Join(dir, rel), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, 100); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, 100); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if o, err := c.Run(ctx, path, append(args, dir)...); err == nil {
		t.Fatalf("pg_verifybackup accepted a backup with a changed data file:\n%s", o)
	} else if !strings.Contains(o, "checksum mismatch") {
		t.Fatalf("pg_verifybackup failed, but not on the changed file: %v", err)
	}
}

// TestToolFromSelectedServer: the programs the helpers run against the selected server are
// of a version that can serve it: pg_basebackup is not older than the server whenever a new
// enough one is installed (else TarBackup sends BASE_BACKUP itself), and the version-bound
// programs are the server's own version's.
func TestToolFromSelectedServer(t *testing.T) {
	Require(t)
	srv, err := Selected()
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{BinDir: srv.BinDir, Version: srv.Major, Server: srv}
	newEnough := false
	for _, s := range Installed() {
		if s.Major >= srv.Major && fileExists(filepath.Join(s.BinDir, "pg_basebackup")) {
			newEnough = true
		}
	}
	if c.ClientCanBackUp() != newEnough {
		t.Fatalf("ClientCanBackUp = %v for %s, but a pg_basebackup at least as new is installed: %v", c.ClientCanBackUp(), srv, newEnough)
	}
	for _, p := range []string{"pg_verifybackup", "pg_waldump", "pg_combinebackup"} {
		s, ok := c.Tool(p)
		if !ok {
			// pg_combinebackup exists from 17; the oracles OracleSetup names must be there.
			setup, named := OracleSetup[srv.Major]
			if named && RequireOracle() && (p != "pg_combinebackup" || srv.Major >= 17) {
				t.Fatalf("%s: none of version %d installed (install it with %s): WALWEAVE_REQUIRE_PG=1, a missing oracle is a failure", p, srv.Major, setup)
			}
			t.Logf("%s: none of version %d installed", p, srv.Major)
			continue
		}
		v, err := probeProgram(s.BinDir, p)
		if err != nil || v.Major != srv.Major {
			t.Fatalf("%s for %s: %s (%v, %v)", p, srv, s.BinDir, v.Version, err)
		}
		t.Logf("%s for %s: %s %s", p, srv, s.BinDir, v.Version)
	}
}

// fatalRecorder is a testing.TB whose Fatal records the message and ends the goroutine, as
// testing's does, so that a test can watch a helper fail.
type fatalRecorder struct {
	testing.TB
	fatal string
}

func (f *fatalRecorder) Helper()             {}
func (f *fatalRecorder) Logf(string, ...any) {}
func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// TestMissingOracleFails: with WALWEAVE_REQUIRE_PG=1 a server whose own pg_verifybackup is
// named in OracleSetup (15, 17, 18) but not installed fails the test, naming the setup
// command; without it, 17 and 18 run none and 16 (not named) falls back to another version's
// with -n.
func TestMissingOracleFails(t *testing.T) {
	pg15 := fakeInstall(t, 15, "psql", "pgbench", "pg_verifybackup", "pg_waldump")
	matrix := func(major int) Server { return fakeInstall(t, major, "postgres", "initdb", "pg_ctl") }
	run := func(srv Server, require bool) (rec *fatalRecorder, path string, args []string, ok bool) {
		rec = &fatalRecorder{TB: t}
		done := make(chan struct{})
		go func() {
			defer close(done)
			path, args, ok = pgVerifyBackup(rec, srv, []Server{pg15}, require)
		}()
		<-done
		return
	}
	for major, setup := range map[int]string{17: "scripts/setup-pg17-tools.sh", 18: "scripts/setup-pg18-src.sh"} {
		if rec, _, _, _ := run(matrix(major), true); !strings.Contains(rec.fatal, setup) {
			t.Fatalf("%d without its pg_verifybackup under WALWEAVE_REQUIRE_PG=1: fatal %q, want a failure naming %s", major, rec.fatal, setup)
		}
		if rec, _, _, ok := run(matrix(major), false); rec.fatal != "" || ok {
			t.Fatalf("%d without its pg_verifybackup: fatal %q, ok %v; want no oracle run and no failure", major, rec.fatal, ok)
		}
	}
	if rec, path, args, ok := run(matrix(16), true); rec.fatal != "" || !ok || path != filepath.Join(pg15.BinDir, "pg_verifybackup") || strings.Join(args, " ") != "-n" {
		t.Fatalf("16: fatal %q, %s %v %v; want 15's pg_verifybackup with -n", rec.fatal, path, args, ok)
	}
	if rec, path, args, ok := run(pg15, true); rec.fatal != "" || !ok || path != filepath.Join(pg15.BinDir, "pg_verifybackup") || len(args) != 0 {
		t.Fatalf("15: fatal %q, %s %v %v; want its own pg_verifybackup, full", rec.fatal, path, args, ok)
	}
}
