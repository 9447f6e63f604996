package restore_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	fixture "github.com/walweave/walweave/internal/verifytest"
	"github.com/walweave/walweave/restore"
	"github.com/walweave/walweave/verify"
)

func extract(t *testing.T, b []byte, opts restore.Options) (*verify.Report, error) {
	t.Helper()
	return restore.Extract(context.Background(), bytes.NewReader(b), opts)
}

// sameContent checks that every regular member of s is on disk under dir with its content.
func sameContent(t *testing.T, s *fixture.Stream, dir string, skip ...string) {
	t.Helper()
	for _, m := range s.Members {
		if m.Type != '0' || m.Source != nil {
			continue
		}
		if contains(skip, m.Name) {
			continue
		}
		got, err := os.ReadFile(filepath.Join(dir, m.Name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, m.Data) {
			t.Fatalf("%s differs on disk", m.Name)
		}
	}
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func TestExtractSynth(t *testing.T) {
	s := fixture.Synth(fixture.SynthOptions{Tablespace: true, BigFiles: 2, BigFileSize: 3<<20 + 5})
	dir := filepath.Join(t.TempDir(), "data")
	rep, err := extract(t, s.Bytes(), restore.Options{Dir: dir})
	if err != nil {
		t.Fatalf("%v\n%s", err, rep)
	}
	if !rep.OK() {
		t.Fatalf("%s", rep)
	}
	sameContent(t, s, dir)
	fi, err := os.Lstat(filepath.Join(dir, "pg_tblspc/16384"))
	if err != nil || !fi.IsDir() {
		t.Fatalf("in-place tablespace: %v %v", fi, err)
	}
	for _, p := range []string{"", "base", "pg_tblspc/16384/PG_15_202209061"} {
		if fi, _ := os.Stat(filepath.Join(dir, p)); fi.Mode().Perm() != 0o700 {
			t.Fatalf("%s has mode %v", p, fi.Mode())
		}
	}
	if fi, _ := os.Stat(filepath.Join(dir, "PG_VERSION")); fi.Mode().Perm() != 0o600 {
		t.Fatalf("PG_VERSION has mode %v", fi.Mode())
	}
	conf, _ := os.ReadFile(filepath.Join(dir, "postgresql.auto.conf"))
	if !strings.Contains(string(conf), "allow_in_place_tablespaces = on") {
		t.Fatalf("auto.conf lost walweave's setting:\n%s", conf)
	}

	// Again into an existing empty directory: fine; into a non-empty one: refused.
	if _, err := extract(t, s.Bytes(), restore.Options{Dir: dir}); !errors.Is(err, restore.ErrNotEmpty) {
		t.Fatalf("non-empty dir: %v", err)
	}
	empty := t.TempDir()
	if _, err := extract(t, s.Bytes(), restore.Options{Dir: empty, NoSync: true, Workers: 1}); err != nil {
		t.Fatal(err)
	}
}

func TestExtractSynthRelocate(t *testing.T) {
	s := fixture.Synth(fixture.SynthOptions{Tablespace: true})
	for _, key := range []string{"/srv/ts one", "pg_tblspc/16384"} {
		t.Run(key, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			ts := filepath.Join(t.TempDir(), "ts")
			rep, err := extract(t, s.Bytes(), restore.Options{Dir: dir, TablespaceMap: map[string]string{key: ts}})
			if err != nil {
				t.Fatalf("%v\n%s", err, rep)
			}
			link, err := os.Readlink(filepath.Join(dir, "pg_tblspc/16384"))
			if err != nil || link != ts {
				t.Fatalf("pg_tblspc/16384 -> %q, %v", link, err)
			}
			if _, err := os.Stat(filepath.Join(ts, "PG_15_202209061/5/17000")); err != nil {
				t.Fatal(err)
			}
			if fi, _ := os.Stat(ts); fi.Mode().Perm() != 0o700 {
				t.Fatalf("tablespace dir mode %v", fi.Mode())
			}
			conf, _ := os.ReadFile(filepath.Join(dir, "postgresql.auto.conf"))
			if strings.Contains(string(conf), "walweave") || strings.Contains(string(conf), "allow_in_place") {
				t.Fatalf("walweave's lines left in auto.conf:\n%s", conf)
			}
			if !strings.Contains(string(conf), "ALTER SYSTEM") {
				t.Fatalf("the rest of auto.conf was lost:\n%s", conf)
			}
		})
	}
	t.Run("unknown mapping", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "data")
		_, err := extract(t, s.Bytes(), restore.Options{Dir: dir, TablespaceMap: map[string]string{"/nowhere": filepath.Join(t.TempDir(), "ts")}})
		if err == nil || !strings.Contains(err.Error(), "matches no tablespace") {
			t.Fatalf("got %v", err)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Fatalf("failed restore left %s", dir)
		}
	})
	t.Run("non-empty tablespace dir", func(t *testing.T) {
		ts := t.TempDir()
		os.WriteFile(filepath.Join(ts, "x"), nil, 0o600)
		_, err := extract(t, s.Bytes(), restore.Options{Dir: filepath.Join(t.TempDir(), "d"), TablespaceMap: map[string]string{"/srv/ts one": ts}})
		if !errors.Is(err, restore.ErrNotEmpty) {
			t.Fatalf("got %v", err)
		}
	})
}

func TestExtractRecovery(t *testing.T) {
	s := fixture.Synth(fixture.SynthOptions{})
	dir := filepath.Join(t.TempDir(), "data")
	_, err := extract(t, s.Bytes(), restore.Options{Dir: dir, NoSync: true, Recovery: &restore.RecoveryOptions{
		Standby: true, PrimaryConnInfo: "host=primary user=rep password='it''s'", PrimarySlotName: "slot1"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "standby.signal")); err != nil {
		t.Fatal(err)
	}
	conf, _ := os.ReadFile(filepath.Join(dir, "postgresql.auto.conf"))
	for _, want := range []string{restore.RecoveryComment, `primary_conninfo = 'host=primary user=rep password=''it''''s'''`, "primary_slot_name = 'slot1'"} {
		if !strings.Contains(string(conf), want) {
			t.Fatalf("auto.conf lacks %q:\n%s", want, conf)
		}
	}
	dir2 := filepath.Join(t.TempDir(), "data")
	_, err = extract(t, s.Bytes(), restore.Options{Dir: dir2, NoSync: true, Recovery: &restore.RecoveryOptions{
		TargetLSN: "0/5000000", TargetAction: "promote"}})
	if err != nil {
		t.Fatal(err)
	}
	conf, _ = os.ReadFile(filepath.Join(dir2, "postgresql.auto.conf"))
	if _, err := os.Stat(filepath.Join(dir2, "recovery.signal")); err != nil || !strings.Contains(string(conf), "recovery_target_lsn = '0/5000000'") || !strings.Contains(string(conf), "restore_command = 'false'") {
		t.Fatalf("recovery.signal %v; auto.conf:\n%s", err, conf)
	}
	for _, bad := range []restore.RecoveryOptions{{TargetLSN: "x"}, {TargetTime: "2026-01-01", TargetName: "a"}, {TargetAction: "explode", TargetName: "a"}, {PrimaryConnInfo: "a\nb"}} {
		if _, err := extract(t, s.Bytes(), restore.Options{Dir: filepath.Join(t.TempDir(), "d"), Recovery: &bad}); err == nil {
			t.Fatalf("%+v accepted", bad)
		}
	}
}

func TestExtractSHAReadsBack(t *testing.T) {
	s := fixture.Synth(fixture.SynthOptions{Algorithm: "SHA256", BigFiles: 1, BigFileSize: 2 << 20})
	dir := filepath.Join(t.TempDir(), "data")
	rep, err := extract(t, s.Bytes(), restore.Options{Dir: dir, NoSync: true})
	if err != nil || rep.ChecksumsNotVerified != 0 || rep.ChecksumsVerified != len(s.Files())-2 {
		t.Fatalf("%v: %+v\n%s", err, rep, rep)
	}
	bad := s.Clone()
	bad.Edit("base/1/16390")[3] ^= 1
	dir = filepath.Join(t.TempDir(), "data")
	rep, err = extract(t, bad.Bytes(), restore.Options{Dir: dir, NoSync: true})
	if err == nil || !strings.Contains(err.Error(), "SHA256 checksum mismatch") {
		t.Fatalf("got %v\n%s", err, rep)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatal("failed restore left its directory")
	}
}

func TestExtractKeepGoing(t *testing.T) {
	s := fixture.Synth(fixture.SynthOptions{})
	s.Insert(2, fixture.Member{Name: "../x", Type: '0', Data: []byte("x")})
	s.Remove(s.Segments()[0])
	dir := filepath.Join(t.TempDir(), "data")
	rep, err := extract(t, s.Bytes(), restore.Options{Dir: dir, NoSync: true})
	if err == nil || rep.Complete || len(rep.Problems) != 1 {
		t.Fatalf("stop at first: %v\n%s", err, rep)
	}
	rep, err = extract(t, s.Bytes(), restore.Options{Dir: dir, NoSync: true, KeepGoing: true})
	if err == nil || !rep.Complete || len(rep.Problems) != 2 {
		t.Fatalf("keep going: %v\n%s", err, rep)
	}
}

// postgresql.auto.conf after the tablespace's files: the tablespace is written in place,
// then moved once its location is known.
func TestExtractSynthRelocateLate(t *testing.T) {
	s := fixture.Synth(fixture.SynthOptions{Tablespace: true})
	auto := *s.Get("postgresql.auto.conf")
	s.Remove("postgresql.auto.conf")
	s.Insert(s.Index("backup_manifest"), auto)
	dir := filepath.Join(t.TempDir(), "data")
	ts := filepath.Join(t.TempDir(), "ts")
	rep, err := extract(t, s.Bytes(), restore.Options{Dir: dir, TablespaceMap: map[string]string{"/srv/ts one": ts}})
	if err != nil {
		t.Fatalf("%v\n%s", err, rep)
	}
	if link, err := os.Readlink(filepath.Join(dir, "pg_tblspc/16384")); err != nil || link != ts {
		t.Fatalf("pg_tblspc/16384 -> %q, %v", link, err)
	}
	got, err := os.ReadFile(filepath.Join(ts, "PG_15_202209061/5/17001"))
	if err != nil || !bytes.Equal(got, s.Get("pg_tblspc/16384/PG_15_202209061/5/17001").Data) {
		t.Fatalf("moved file: %v", err)
	}
}

func TestExtractNoClean(t *testing.T) {
	s := fixture.Synth(fixture.SynthOptions{})
	s.Edit("PG_VERSION")[0] = '9'
	dir := filepath.Join(t.TempDir(), "data")
	_, err := extract(t, s.Bytes(), restore.Options{Dir: dir, NoSync: true, NoClean: true})
	if err == nil || !strings.Contains(err.Error(), "PG_VERSION: CRC32C checksum mismatch") {
		t.Fatalf("got %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "global/pg_control")); err != nil {
		t.Fatalf("NoClean removed the files: %v", err)
	}
	// An existing empty directory is emptied again, not removed.
	empty := t.TempDir()
	if _, err := extract(t, s.Bytes(), restore.Options{Dir: empty, NoSync: true}); err == nil {
		t.Fatal("accepted")
	}
	if ents, err := os.ReadDir(empty); err != nil || len(ents) != 0 {
		t.Fatalf("%v %v", ents, err)
	}
}
