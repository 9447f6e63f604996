package restore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	fixture "github.com/walweave/walweave/internal/verifytest"
	"github.com/walweave/walweave/pgformat"
	"github.com/walweave/walweave/restore"
	"github.com/walweave/walweave/verify"
)

func stream17(t *testing.T, b *fixture.Chain17) []byte {
	t.Helper()
	s, err := b.Stream()
	if err != nil {
		t.Fatal(err)
	}
	return s.Bytes()
}

func synthChain(t *testing.T) (full, inc []byte) { return synthChainAlg(t, "") }

func synthChainAlg(t *testing.T, alg string) (full, inc []byte) {
	f := &fixture.Chain17{Start: 0x2000028, Algorithm: alg}
	f.Add("base/5/16384", fixture.Blocks("abc"))
	f.Add("base/5/16385", fixture.Blocks("de"))
	f.Add("base/5/16386", fixture.Blocks("g"))
	f.Add("base/5/16387_fsm", fixture.Blocks("f"))
	i := &fixture.Chain17{Start: 0x4000028, From: 0x2000028, Algorithm: alg}
	// 16384: block 1 changed, block 3 new past the old end (block 2 kept); truncation length 3.
	i.Add("base/5/INCREMENTAL.16384", fixture.IncrementalFile(3, []uint32{1, 3}, "BD"))
	// 16385: truncated to one block, nothing changed in it.
	i.Add("base/5/INCREMENTAL.16385", fixture.IncrementalFile(1, nil, ""))
	// 16386 dropped (absent); the FSM fork whole; a new relation whole.
	i.Add("base/5/16387_fsm", fixture.Blocks("F"))
	i.Add("base/5/16388", fixture.Blocks("n"))
	return stream17(t, f), stream17(t, i)
}

func chainOpts(dir string) restore.Options {
	return restore.Options{Dir: dir, NoSync: true, Verify: verify.Options{SkipWAL: true}}
}

func streams(bs ...[]byte) []restore.ChainStream {
	var out []restore.ChainStream
	for i, b := range bs {
		out = append(out, restore.ChainStream{Name: fmt.Sprintf("backup%d", i+1), R: bytes.NewReader(b)})
	}
	return out
}

func TestChainSynth(t *testing.T) {
	full, inc := synthChain(t)
	dir := filepath.Join(t.TempDir(), "data")
	cr, err := restore.Chain(context.Background(), streams(full, inc), chainOpts(dir))
	if err != nil {
		for _, r := range cr.Reports {
			t.Log(r)
		}
		t.Fatal(err)
	}
	want := map[string][]byte{
		"base/5/16384":     fixture.Blocks("aBcD"),
		"base/5/16385":     fixture.Blocks("d"),
		"base/5/16387_fsm": fixture.Blocks("F"),
		"base/5/16388":     fixture.Blocks("n"),
	}
	for name, w := range want {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, w) {
			t.Errorf("%s: %d bytes, not the expected %d (or different blocks)", name, len(got), len(w))
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "base/5/16386")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("base/5/16386, absent from the incremental backup, is still there: %v", err)
	}
	for _, gone := range []string{restore.IncompleteMarker, "base/5/INCREMENTAL.16384"} {
		if _, err := os.Stat(filepath.Join(dir, gone)); err == nil {
			t.Errorf("%s is on disk", gone)
		}
	}
	label, _ := os.ReadFile(filepath.Join(dir, "backup_label"))
	if l, err := pgformat.ParseBackupLabel(label); err != nil || l.Incremental() || l.StartLSN != 0x4000028 {
		t.Errorf("backup_label: %v %+v", err, l)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, "backup_manifest"))
	m, err := pgformat.ParseManifest(raw)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, f := range m.Files {
		paths = append(paths, f.Path)
	}
	if got := strings.Join(paths, " "); got != "PG_VERSION backup_label base/5/16384 base/5/16385 base/5/16387_fsm base/5/16388 global/pg_control" {
		t.Errorf("manifest lists %s", got)
	}
	if cr.Patched != 2 || cr.BlocksWritten != 2 || cr.Removed != 1 {
		t.Errorf("patched %d, blocks %d, removed %d", cr.Patched, cr.BlocksWritten, cr.Removed)
	}
}

func TestChainSynthRefused(t *testing.T) {
	full, inc := synthChain(t)
	other := &fixture.Chain17{Start: 0x4000028, From: 0x3000028}
	other.Add("base/5/16388", fixture.Blocks("n"))
	noBase := &fixture.Chain17{Start: 0x4000028, From: 0x2000028}
	noBase.Add("base/5/INCREMENTAL.99999", fixture.IncrementalFile(1, nil, ""))
	for _, c := range []struct {
		name  string
		chain [][]byte
		want  string
	}{
		{"incremental alone", [][]byte{inc}, "cannot be restored alone"},
		{"incremental first", [][]byte{inc, full}, "a chain starts with a full backup"},
		{"full twice", [][]byte{full, full}, "is a full backup"},
		{"not linked", [][]byte{full, stream17(t, other)}, "does not follow"},
		{"no base file", [][]byte{full, stream17(t, noBase)}, "which no earlier backup of the chain has"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			_, err := restore.Chain(context.Background(), streams(c.chain...), chainOpts(dir))
			if !errors.Is(err, verify.ErrChain) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want verify.ErrChain with %q", err, c.want)
			}
			if _, serr := os.Stat(dir); serr == nil {
				t.Errorf("the failed restore left %s", dir)
			}
		})
	}
}

// TestChainRefusesAnotherClusterFromHead: backups whose LSNs link but whose backup_label
// comments (pgformat.BackupOrigin, written by walweave) name another cluster or another major
// version are refused from the streams' heads, before the full backup is read through: the
// first stream is not read to its end and nothing is created.
func TestChainRefusesAnotherClusterFromHead(t *testing.T) {
	origin, err := fixture.Origin17()
	if err != nil {
		t.Fatal(err)
	}
	build := func(c *fixture.Chain17, o pgformat.BackupOrigin) []byte {
		c.Origin = o
		return stream17(t, c)
	}
	newFull := func() *fixture.Chain17 {
		f := &fixture.Chain17{Start: 0x2000028}
		f.Add("base/5/16384", fixture.Blocks("abcdefgh"))
		return f
	}
	newInc := func() *fixture.Chain17 {
		i := &fixture.Chain17{Start: 0x4000028, From: 0x2000028}
		i.Add("base/5/INCREMENTAL.16384", fixture.IncrementalFile(3, []uint32{1}, "B"))
		return i
	}
	otherCluster := origin
	otherCluster.SystemID++
	otherMajor := origin
	otherMajor.ServerVersion = 160010
	for _, c := range []struct {
		name      string
		full, inc pgformat.BackupOrigin
		want      string
	}{
		{"another cluster", origin, otherCluster, fmt.Sprintf("backup2 is a backup of another cluster (system identifier %d; backup1's is %d)", otherCluster.SystemID, origin.SystemID)},
		{"another major version", origin, otherMajor, "backup2 is a backup of PostgreSQL 16, backup1 of PostgreSQL 17"},
	} {
		t.Run(c.name, func(t *testing.T) {
			full, inc := build(newFull(), c.full), build(newInc(), c.inc)
			counted := &fixture.CountingReader{R: bytes.NewReader(full)}
			dir := filepath.Join(t.TempDir(), "data")
			_, err := restore.Chain(context.Background(), []restore.ChainStream{
				{Name: "backup1", R: counted}, {Name: "backup2", R: bytes.NewReader(inc)}}, chainOpts(dir))
			if !errors.Is(err, verify.ErrChain) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want verify.ErrChain with %q", err, c.want)
			}
			if counted.N >= int64(len(full)) {
				t.Errorf("the full backup was read to its end (%d bytes) before the refusal", counted.N)
			}
			if _, serr := os.Stat(dir); !os.IsNotExist(serr) {
				t.Errorf("%s exists after the refusal (%v)", dir, serr)
			}
		})
	}
	// The same streams from one cluster restore: the comment changes nothing else.
	dir := filepath.Join(t.TempDir(), "data")
	if _, err := restore.Chain(context.Background(), streams(build(newFull(), origin), build(newInc(), origin)), chainOpts(dir)); err != nil {
		t.Fatalf("a chain of one cluster: %v", err)
	}
}

// TestChainSynthMidway: an error while the incremental backup is applied, with NoClean,
// leaves the marker and a backup_label with INCREMENTAL lines (PostgreSQL refuses it).
func TestChainSynthMidway(t *testing.T) {
	full, inc := synthChain(t)
	dir := filepath.Join(t.TempDir(), "data")
	opts := chainOpts(dir)
	opts.NoClean = true
	_, err := restore.Chain(context.Background(), streams(full, inc[:len(inc)-3000]), opts)
	if err == nil {
		t.Fatal("a truncated incremental stream was applied")
	}
	marker, merr := os.ReadFile(filepath.Join(dir, restore.IncompleteMarker))
	if merr != nil || !strings.Contains(string(marker), "backup2") {
		t.Fatalf("marker: %v %q", merr, marker)
	}
	label, _ := os.ReadFile(filepath.Join(dir, "backup_label"))
	if l, err := pgformat.ParseBackupLabel(label); err != nil || !l.Incremental() {
		t.Fatalf("backup_label after a failure midway must keep INCREMENTAL lines: %v\n%s", err, label)
	}
}

// TestChainSynthSHA: with SHA-256 manifests (and nothing said in Options.Verify), the full
// backup's checksums are checked by reading its files back, the incremental backup's while
// it streams (the full backup's algorithm is taken for it).
func TestChainSynthSHA(t *testing.T) {
	full, inc := synthChainAlg(t, "SHA256")
	dir := filepath.Join(t.TempDir(), "data")
	cr, err := restore.Chain(context.Background(), streams(full, inc), chainOpts(dir))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range cr.Reports {
		if r.ChecksumAlgorithm != "SHA256" || r.ChecksumsNotVerified != 0 || r.ChecksumsVerified == 0 {
			t.Errorf("%s", r)
		}
	}
}
