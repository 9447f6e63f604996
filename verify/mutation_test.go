package verify_test

import (
	"archive/tar"
	"bytes"
	"strings"
	"testing"

	fixture "github.com/walweave/walweave/internal/verifytest"
	"github.com/walweave/walweave/verify"
)

// Mutation is one way to break a stream, and what the report must then say.
type mutation struct {
	name   string
	mutate func(t *testing.T, s *fixture.Stream)
	want   []string
}

// dataFile picks the largest regular file of the data directory (not WAL, not ignored).
func dataFile(s *fixture.Stream, prefix string) string {
	best, size := "", -1
	for _, m := range s.Members {
		if m.Type == tar.TypeReg && strings.HasPrefix(m.Name, prefix) && len(m.Data) > size {
			best, size = m.Name, len(m.Data)
		}
	}
	return best
}

func mutations() []mutation {
	return []mutation{
		{"flipped byte in a data file", func(t *testing.T, s *fixture.Stream) {
			d := s.Edit(dataFile(s, "base/"))
			d[len(d)/2] ^= 0x01
		}, []string{"CRC32C checksum mismatch"}},
		{"flipped byte in a tablespace file", func(t *testing.T, s *fixture.Stream) {
			name := dataFile(s, "pg_tblspc/")
			if name == "" {
				// Both fixtures are made with a tablespace (SynthOptions.Tablespace, and
				// verifytest.TakeBackup's ts1): a stream without one is a broken fixture.
				t.Fatal("the stream has no file under pg_tblspc/; its fixture is made with a tablespace")
			}
			s.Edit(name)[100] ^= 0x80
		}, []string{"pg_tblspc/", "CRC32C checksum mismatch"}},
		{"file dropped", func(t *testing.T, s *fixture.Stream) {
			s.Remove(dataFile(s, "base/"))
		}, []string{"in the manifest but not in the stream"}},
		{"extra file", func(t *testing.T, s *fixture.Stream) {
			s.Insert(3, fixture.Member{Name: "base/extra_file", Type: tar.TypeReg, Data: []byte("surprise")})
		}, []string{"base/extra_file: in the stream but not in the manifest"}},
		{"first WAL segment dropped", func(t *testing.T, s *fixture.Stream) {
			s.Remove(s.Segments()[0])
		}, []string{"missing WAL segment"}},
		{"middle WAL segment dropped", func(t *testing.T, s *fixture.Stream) {
			segs := s.Segments()
			s.Remove(segs[len(segs)/2])
		}, []string{"missing WAL segment"}},
		{"WAL segment replaced by another", func(t *testing.T, s *fixture.Stream) {
			segs := s.Segments()
			s.Get(segs[1]).Data = append([]byte(nil), s.Get(segs[0]).Data...)
		}, []string{"page address is", "a stale, swapped or misnamed segment"}},
		{"manifest byte changed", func(t *testing.T, s *fixture.Stream) {
			d := s.Edit("backup_manifest")
			i := bytes.Index(d, []byte(`"Size": `))
			d[i+8] ^= 0x01 // a digit becomes another digit
		}, []string{"manifest checksum mismatch"}},
		{"no manifest", func(t *testing.T, s *fixture.Stream) {
			s.Remove("backup_manifest")
		}, []string{"backup_manifest: missing"}},
		{"member ../x", func(t *testing.T, s *fixture.Stream) {
			s.Insert(2, fixture.Member{Name: "../x", Type: tar.TypeReg, Data: []byte("x")})
		}, []string{`unsafe member: member name contains ".."`}},
		{"member /etc/x", func(t *testing.T, s *fixture.Stream) {
			s.Insert(2, fixture.Member{Name: "/etc/x", Type: tar.TypeReg, Data: []byte("x")})
		}, []string{"unsafe member: absolute member name"}},
		{"symlink member and a member through it", func(t *testing.T, s *fixture.Stream) {
			s.Insert(2, fixture.Member{Name: "evil", Type: tar.TypeSymlink, Linkname: "/tmp"})
			s.Insert(3, fixture.Member{Name: "evil/x", Type: tar.TypeReg, Data: []byte("x")})
		}, []string{"evil: symbolic link member", "evil/x: in the stream but not in the manifest"}},
	}
}

// truncations returns stream cuts: (name, offset).
func truncations(s *fixture.Stream) []struct {
	name string
	off  int64
} {
	offs := s.MemberOffsets()
	n := len(offs)
	return []struct {
		name string
		off  int64
	}{
		{"inside the first header", 100},
		{"inside backup_label's data", offs[0] + 512 + 10},
		{"at a member boundary in the middle", offs[n/2]},
		{"at the member boundary before backup_manifest", offs[n-2]},
		{"inside the manifest", offs[n-2] + 512 + 100},
		{"just before the trailer", offs[n-1]},
		{"inside the trailer", offs[n-1] + 512},
		{"one byte short", offs[n-1] + 1023},
	}
}

func runMutations(t *testing.T, base *fixture.Stream) {
	for _, mu := range mutations() {
		t.Run(mu.name, func(t *testing.T) {
			s := base.Clone()
			mu.mutate(t, s)
			rep := check(t, s.Bytes(), verify.Options{})
			wantProblem(t, rep, mu.want...)
			t.Logf("%s", rep)
		})
	}
	full := base.Bytes()
	for _, tr := range truncations(base) {
		t.Run("truncated "+tr.name, func(t *testing.T) {
			rep := check(t, full[:tr.off], verify.Options{})
			wantProblem(t, rep, "truncated")
			t.Logf("%s", rep)
		})
	}
}

func TestSynthMutations(t *testing.T) {
	runMutations(t, fixture.Synth(fixture.SynthOptions{Tablespace: true}))
}

func TestRealMutations(t *testing.T) {
	_, _, s := shared.Get(t)
	runMutations(t, s)
}

// More ways to break the WAL and the tar, on synthetic streams.
func TestSynthWALAndTarProblems(t *testing.T) {
	base := fixture.Synth(fixture.SynthOptions{})
	segs := base.Segments()
	cases := []mutation{
		{"WAL record corrupted", func(t *testing.T, s *fixture.Stream) {
			s.Edit(segs[1])[5000] ^= 0x10 // inside a record of page 0
		}, []string{"incorrect record checksum"}},
		{"WAL of another cluster", func(t *testing.T, s *fixture.Stream) {
			s.Edit(segs[1])[24] ^= 0x01 // xlp_sysid
		}, []string{"system identifier"}},
		{"pg_control of another cluster", func(t *testing.T, s *fixture.Stream) {
			s.Edit("global/pg_control")[0] ^= 1
		}, []string{"differs from global/pg_control's", "(WAL of another cluster)"}},
		{"zero page before the end", func(t *testing.T, s *fixture.Stream) {
			clear(s.Edit(segs[1])[8192*3 : 8192*4])
		}, []string{"zero-filled page"}},
		{"WAL segment truncated", func(t *testing.T, s *fixture.Stream) {
			m := s.Get(segs[1])
			m.Data = m.Data[: len(m.Data)-8192 : len(m.Data)-8192]
		}, []string{"a partial or padded segment"}},
		{"WAL segment from PostgreSQL 16", func(t *testing.T, s *fixture.Stream) {
			for _, n := range segs {
				d := s.Edit(n)
				for off := 0; off < len(d); off += 8192 {
					if d[off] == 0x10 && d[off+1] == 0xD1 {
						d[off] = 0x13
					}
				}
			}
		}, []string{"PostgreSQL 16's, but PG_VERSION says 15"}},
		{"duplicate member", func(t *testing.T, s *fixture.Stream) {
			s.Insert(5, s.Members[4])
		}, []string{"duplicate member"}},
		{"member after the manifest", func(t *testing.T, s *fixture.Stream) {
			s.Members = append(s.Members, fixture.Member{Name: "late", Type: tar.TypeReg})
		}, []string{"member after backup_manifest"}},
		{"backup_label not first", func(t *testing.T, s *fixture.Stream) {
			s.Members[0], s.Members[1] = s.Members[1], s.Members[0]
		}, []string{"the first member is not backup_label"}},
		{"backup_label start differs", func(t *testing.T, s *fixture.Stream) {
			m := s.Get("backup_label")
			m.Data = bytes.Replace(m.Data, []byte("START TIMELINE: 1"), []byte("START TIMELINE: 2"), 1)
		}, []string{"START TIMELINE 2 differs"}},
		{"file below a file", func(t *testing.T, s *fixture.Stream) {
			s.Insert(5, fixture.Member{Name: "PG_VERSION/x", Type: tar.TypeReg})
		}, []string{"member below the regular file"}},
		{"partial segment", func(t *testing.T, s *fixture.Stream) {
			s.Insert(5, fixture.Member{Name: "pg_wal/000000010000000000000009.partial", Type: tar.TypeReg})
		}, []string{"partial WAL segment"}},
		{"hard link", func(t *testing.T, s *fixture.Stream) {
			s.Insert(5, fixture.Member{Name: "hl", Type: tar.TypeLink, Linkname: "PG_VERSION"})
		}, []string{"hard link member"}},
	}
	for _, mu := range cases {
		t.Run(mu.name, func(t *testing.T) {
			s := base.Clone()
			mu.mutate(t, s)
			rep := check(t, s.Bytes(), verify.Options{})
			wantProblem(t, rep, mu.want...)
			t.Logf("%s", rep)
		})
	}
	t.Run("garbage after the trailer", func(t *testing.T) {
		b := append(base.Bytes(), make([]byte, 10240)...)
		if rep := check(t, b, verify.Options{}); !rep.OK() {
			t.Fatalf("zero padding after the trailer is fine:\n%s", rep)
		}
		b = append(b, "junk"...)
		wantProblem(t, check(t, b, verify.Options{}), "after the tar end-of-archive marker")
	})
	t.Run("no trailer", func(t *testing.T) {
		s := base.Clone()
		s.NoTrailer = true
		wantProblem(t, check(t, s.Bytes(), verify.Options{}), "without the tar end-of-archive marker")
	})
}
