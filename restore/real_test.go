package restore_test

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walweave/walweave/internal/pgtest"
	fixture "github.com/walweave/walweave/internal/verifytest"
	"github.com/walweave/walweave/restore"
)

// TestExtractRealStarts restores a stream made from a real server, in place and with the
// tablespace relocated, checks it with pg_verifybackup and starts PostgreSQL on it.
func TestExtractRealStarts(t *testing.T) {
	c, b, s := shared.Get(t)
	for _, relocate := range []bool{false, true} {
		name := "in place"
		if relocate {
			name = "relocated"
		}
		t.Run(name, func(t *testing.T) {
			base, err := c.NewDir("restore")
			if err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(base, "data")
			opts := restore.Options{Dir: dir}
			ts := ""
			if relocate {
				ts = filepath.Join(base, "ts1-new")
				opts.TablespaceMap = map[string]string{b.TablespaceLocation: ts}
			}
			rep, err := restore.Extract(context.Background(), bytes.NewReader(s.Bytes()), opts)
			if err != nil {
				t.Fatalf("%v\n%s", err, rep)
			}
			t.Logf("%s", rep)
			if err := pgtest.Chown(base); err != nil {
				t.Fatal(err)
			}
			link := filepath.Join(dir, "pg_tblspc", b.TablespaceOID)
			if relocate {
				if got, err := os.Readlink(link); err != nil || got != ts {
					t.Fatalf("%s -> %q (%v), want %s", link, got, err, ts)
				}
			} else if fi, err := os.Lstat(link); err != nil || !fi.IsDir() {
				t.Fatalf("%s is not a directory: %v", link, err)
			}
			c.VerifyBackup(t, dir)
			r := pgtest.StartOn(t, dir, nil)
			if got := r.QueryValue(t, "select count(*) from ts_table"); got != "1234" {
				t.Fatalf("ts_table has %s rows", got)
			}
			if got := r.QueryValue(t, "select count(*) from base_table"); got != "45000" {
				t.Fatalf("base_table has %s rows", got)
			}
			want := "on"
			if relocate {
				want = "off"
				if got := r.QueryValue(t, "select pg_tablespace_location(oid) from pg_tablespace where spcname = 'ts1'"); got != ts {
					t.Fatalf("ts1 is at %q, want %q", got, ts)
				}
			}
			if got := r.QueryValue(t, "current_setting('allow_in_place_tablespaces')"); got != want {
				t.Fatalf("allow_in_place_tablespaces = %s, want %s", got, want)
			}
		})
	}
}

type mutation struct {
	name   string
	mutate func(s *fixture.Stream)
	want   string
	// pgVerify: pg_verifybackup must also reject the copy extracted with NoClean.
	pgVerify bool
}

func dataFile(s *fixture.Stream, prefix string) string {
	best, size := "", -1
	for _, m := range s.Members {
		if m.Type == tar.TypeReg && strings.HasPrefix(m.Name, prefix) && len(m.Data) > size {
			best, size = m.Name, len(m.Data)
		}
	}
	return best
}

// TestExtractRealMutations: every broken stream fails the restore, which removes its
// output and names the problem, in agreement with pg_verifybackup on the same stream
// extracted by GNU tar.
func TestExtractRealMutations(t *testing.T) {
	c, _, base := shared.Get(t)
	outside := t.TempDir()
	cases := []mutation{
		{"flipped byte in a data file", func(s *fixture.Stream) {
			d := s.Edit(dataFile(s, "base/"))
			d[len(d)/2] ^= 1
		}, "CRC32C checksum mismatch", true},
		{"flipped byte in a tablespace file", func(s *fixture.Stream) {
			s.Edit(dataFile(s, "pg_tblspc/"))[100] ^= 0x80
		}, "CRC32C checksum mismatch", true},
		{"file dropped", func(s *fixture.Stream) { s.Remove(dataFile(s, "base/")) }, "in the manifest but not in the stream", true},
		{"extra file", func(s *fixture.Stream) {
			s.Insert(3, fixture.Member{Name: "base/extra_file", Type: tar.TypeReg, Data: []byte("x")})
		}, "in the stream but not in the manifest", true},
		{"WAL segment dropped", func(s *fixture.Stream) {
			segs := s.Segments()
			s.Remove(segs[len(segs)/2])
		}, "missing WAL segment", true},
		{"WAL segment replaced by another", func(s *fixture.Stream) {
			segs := s.Segments()
			s.Get(segs[1]).Data = append([]byte(nil), s.Get(segs[0]).Data...)
		}, "a stale, swapped or misnamed segment", true},
		{"manifest byte changed", func(s *fixture.Stream) {
			d := s.Edit("backup_manifest")
			i := bytes.Index(d, []byte(`"Size": `))
			d[i+8] ^= 1
		}, "manifest checksum mismatch", true},
		{"no manifest", func(s *fixture.Stream) { s.Remove("backup_manifest") }, "backup_manifest: missing", true},
		{"member ../x", func(s *fixture.Stream) {
			s.Insert(2, fixture.Member{Name: "../x", Type: tar.TypeReg, Data: []byte("x")})
		}, `member name contains ".."`, false},
		{"member /etc/x", func(s *fixture.Stream) {
			s.Insert(2, fixture.Member{Name: "/etc/walweave-test-x", Type: tar.TypeReg, Data: []byte("x")})
		}, "absolute member name", false},
		{"symlink member and a member through it", func(s *fixture.Stream) {
			s.Insert(2, fixture.Member{Name: "evil", Type: tar.TypeSymlink, Linkname: outside})
			s.Insert(3, fixture.Member{Name: "evil/x", Type: tar.TypeReg, Data: []byte("x")})
		}, "evil: symbolic link member", false},
	}
	for _, mu := range cases {
		t.Run(mu.name, func(t *testing.T) {
			s := base.Clone()
			mu.mutate(s)
			stream := s.Bytes()
			parent := t.TempDir()
			dir := filepath.Join(parent, "data")
			rep, err := restore.Extract(context.Background(), bytes.NewReader(stream), restore.Options{Dir: dir, NoSync: true})
			if err == nil || !strings.Contains(err.Error(), mu.want) || rep.OK() {
				t.Fatalf("restore: err %v, want %q\n%s", err, mu.want, rep)
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Fatalf("the failed restore left %s", dir)
			}
			if ents, _ := os.ReadDir(outside); len(ents) > 0 {
				t.Fatalf("something was written outside: %v", ents)
			}
			if _, err := os.Stat("/etc/walweave-test-x"); err == nil {
				t.Fatal("/etc/walweave-test-x was written")
			}
			if _, err := os.Stat(filepath.Join(parent, "x")); err == nil {
				t.Fatal("../x was written")
			}
			t.Logf("restore: %v", err)
			if !mu.pgVerify {
				return
			}
			// The server's own version's pg_verifybackup (a missing one fails here under
			// WALWEAVE_REQUIRE_PG=1 for the versions pgtest.OracleSetup names: 15, 17, 18).
			// Only it reads the server's WAL (and, from 17, its pg_control): another would
			// reject every stream, or miss WAL damage, for its own reasons (16 has none; see
			// docs/development.md).
			vb, vbArgs, ok := c.PGVerifyBackup(t)
			if !ok || len(vbArgs) > 0 || !c.FullPGVerifyBackup() {
				t.Logf("pg_verifybackup cannot fully check %s's backups: not compared", c.Server)
				return
			}
			// The same stream extracted by GNU tar: pg_verifybackup must reject it too.
			tarPath := filepath.Join(parent, "stream.tar")
			if err := os.WriteFile(tarPath, stream, 0o644); err != nil {
				t.Fatal(err)
			}
			kept := c.Extract(t, tarPath)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			out, err := c.Run(ctx, vb, kept)
			if err == nil {
				t.Fatalf("pg_verifybackup accepts what restore refused:\n%s", out)
			}
			t.Logf("pg_verifybackup agrees: %s", strings.TrimSpace(out))
			os.RemoveAll(kept)
		})
	}
	full := base.Bytes()
	offs := base.MemberOffsets()
	n := len(offs)
	for _, cut := range []int64{100, offs[n/2], offs[n/2] + 700, offs[n-2], offs[n-1], offs[n-1] + 512} {
		parent := t.TempDir()
		dir := filepath.Join(parent, "data")
		rep, err := restore.Extract(context.Background(), bytes.NewReader(full[:cut]), restore.Options{Dir: dir, NoSync: true})
		if err == nil || !strings.Contains(err.Error(), "truncated") {
			t.Fatalf("cut at %d: err %v\n%s", cut, err, rep)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Fatalf("cut at %d: the failed restore left %s", cut, dir)
		}
	}
}
