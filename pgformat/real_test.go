package pgformat_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/walweave/walweave/internal/pgtest"
	"github.com/walweave/walweave/pgformat"
)

// TestRealBackup takes plain-format backups of a real server with pg_basebackup and checks
// pgformat against them: the server's backup_manifest parses, a manifest built from the
// backup's files equals the server's byte for byte (Last-Modified, which pg_basebackup
// does not carry to disk, is taken from the server's manifest), backup_label parses and
// Bytes reproduces it, and pg_control parses.
func TestRealBackup(t *testing.T) {
	pgtest.Require(t)
	c := pgtest.Start(t, pgtest.Options{})
	t.Logf("PostgreSQL %d from %s", c.Version, c.BinDir)
	// Names that exercise the manifest's escaping and Encoded-Path.
	for _, name := range []string{"we\"ird\\name\ttab", "ctl\x01\x1f", "caf\xc3\xa9", "bad\xff\xfeutf8"} {
		if err := os.WriteFile(filepath.Join(c.DataDir, name), []byte("x"+name), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := pgtest.Chown(c.DataDir); err != nil {
		t.Fatal(err)
	}
	c.Exec(t, "create table t as select g from generate_series(1, 10000) g")
	for _, alg := range []string{"CRC32C", "SHA224", "NONE"} {
		t.Run(alg, func(t *testing.T) {
			dir, err := c.NewDir("backup-" + alg)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			if _, err := c.Run(ctx, "pg_basebackup", "-D", dir, "-Fp", "-X", "none", "-c", "fast", "--manifest-checksums="+alg); err != nil {
				t.Fatal(err)
			}
			checkBackupDir(t, dir, c.Version)
		})
	}
	t.Run("pg_control", func(t *testing.T) {
		b, err := os.ReadFile(filepath.Join(c.DataDir, "global", "pg_control"))
		if err != nil {
			t.Fatal(err)
		}
		ctl, err := pgformat.ParseControlFile(b)
		if err != nil {
			t.Fatal(err)
		}
		if ctl.State != pgformat.DBInProduction || ctl.BlockSize != 8192 || ctl.WALSegSize != 16<<20 || ctl.DataChecksumVersion != 1 {
			t.Fatalf("running cluster's pg_control: %+v", ctl)
		}
	})
}

func checkBackupDir(t *testing.T, dir string, version int) {
	t.Helper()
	server, err := os.ReadFile(filepath.Join(dir, "backup_manifest"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := pgformat.ParseManifest(server)
	if err != nil {
		t.Fatalf("server manifest: %v", err)
	}
	if want := 1; version >= 17 {
		want = 2
		if m.Version != want {
			t.Fatalf("manifest version %d", m.Version)
		}
	} else if m.Version != want {
		t.Fatalf("manifest version %d", m.Version)
	}
	alg := pgformat.ChecksumNone
	for _, f := range m.Files {
		if f.Algorithm != "" {
			alg = f.Algorithm
		}
	}
	var out bytes.Buffer
	b, err := pgformat.NewManifestBuilder(&out, pgformat.ManifestOptions{Version: m.Version, SystemIdentifier: m.SystemIdentifier, Algorithm: alg})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range m.Files {
		mtime, err := time.Parse(pgformat.LastModifiedFormat, f.LastModified)
		if err != nil {
			t.Fatalf("%s: Last-Modified %q: %v", f.Path, f.LastModified, err)
		}
		fh, err := os.Open(filepath.Join(dir, filepath.FromSlash(f.Path)))
		if err != nil {
			t.Fatal(err)
		}
		st, _ := fh.Stat()
		err = b.AddFileContent(f.Path, st.Size(), mtime, fh)
		fh.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	sum, err := b.Finish(m.WALRanges)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), server) {
		t.Fatalf("built manifest differs from the server's (checksums %s vs %s)\n%s", sum, m.Checksum, firstDiff(out.Bytes(), server))
	}
	if sum != m.Checksum {
		t.Fatalf("checksum %s, server %s", sum, m.Checksum)
	}
	var enc int
	for _, f := range m.Files {
		if f.Path == "bad\xff\xfeutf8" {
			enc++
		}
	}
	if enc != 1 || !bytes.Contains(server, []byte(`"Encoded-Path": "626164fffe75746638"`)) {
		t.Fatalf("non-UTF-8 name not found as Encoded-Path")
	}
	t.Logf("%d files, %d bytes: identical", len(m.Files), len(server))

	lb, err := os.ReadFile(filepath.Join(dir, "backup_label"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := pgformat.ParseBackupLabel(lb)
	if err != nil {
		t.Fatal(err)
	}
	if l.StartLSN != m.StartLSN() || l.StartTimeline != m.WALRanges[len(m.WALRanges)-1].Timeline || l.BackupFrom != "primary" || l.Incremental() {
		t.Fatalf("label %+v vs manifest start %s", l, m.StartLSN())
	}
	if got := l.Bytes(); !bytes.Equal(got, lb) {
		t.Fatalf("Bytes:\n%s\nserver:\n%s", got, lb)
	}
	ctl, err := os.ReadFile(filepath.Join(dir, "global", "pg_control"))
	if err != nil {
		t.Fatal(err)
	}
	cf, err := pgformat.ParseControlFile(ctl)
	if err != nil {
		t.Fatal(err)
	}
	if m.Version >= 2 && cf.SystemIdentifier != m.SystemIdentifier {
		t.Fatalf("system id %d vs manifest %d", cf.SystemIdentifier, m.SystemIdentifier)
	}
}

func firstDiff(a, b []byte) string {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	lo := max(0, i-200)
	return "built:  " + string(a[lo:min(len(a), i+200)]) + "\nserver: " + string(b[lo:min(len(b), i+200)])
}

// TestControlFileOtherReleases runs initdb of the PostgreSQL 16, 17 and 18 builds the
// version-matrix cache holds (skipped, with a log line, when absent) and parses the result.
func TestControlFileOtherReleases(t *testing.T) {
	pgtest.Require(t)
	root := pgtest.CacheDir()
	for _, major := range []string{"16", "17", "18"} {
		t.Run(major, func(t *testing.T) {
			bin := filepath.Join(root, major, "bin")
			if _, err := os.Stat(filepath.Join(bin, "initdb")); err != nil {
				if os.Getenv("WALWEAVE_REQUIRE_PG") == "1" {
					t.Fatalf("no PostgreSQL %s build at %s: run scripts/setup-pg-matrix.sh (CI must test every version)", major, bin)
				}
				t.Skipf("no PostgreSQL %s build at %s (scripts/setup-pg-matrix.sh downloads it)", major, bin)
			}
			dir, err := os.MkdirTemp("", "pgformat-initdb-")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(dir) })
			if err := pgtest.Chown(dir); err != nil {
				t.Fatal(err)
			}
			data := filepath.Join(dir, "data")
			c := &pgtest.Cluster{BinDir: bin, Base: dir}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := c.Command(ctx, filepath.Join(bin, "initdb"), "-k", "-A", "trust", "-U", "postgres", "-D", data)
			cmd.Env = append(cmd.Env, "LD_LIBRARY_PATH="+filepath.Join(root, major, "lib"))
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("initdb: %v\n%s", err, out)
			}
			b, err := os.ReadFile(filepath.Join(data, "global", "pg_control"))
			if err != nil {
				t.Fatal(err)
			}
			ctl, err := pgformat.ParseControlFile(b)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]uint32{"16": 1300, "17": 1700, "18": 1800}[major]
			if ctl.PgControlVersion != want || ctl.BlockSize != 8192 || ctl.State != pgformat.DBShutdowned {
				t.Fatalf("%+v", ctl)
			}
			t.Logf("PostgreSQL %s: pg_control version %d, catalog %d, system %d", major, ctl.PgControlVersion, ctl.CatalogVersion, ctl.SystemIdentifier)
		})
	}
}
