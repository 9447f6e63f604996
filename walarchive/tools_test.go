package walarchive

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// archiveOf makes an archive of about mb MB of WAL from a fresh cluster and returns its
// directory and complete segment names, oldest first.
func archiveOf(t *testing.T, mb int, comp string) (string, []string) {
	t.Helper()
	c := newCluster(t, nil)
	dir := t.TempDir()
	sink, err := NewDirSink(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg := baseConfig(t, c.DSN(), "tools", sink)
	if cfg.Compression, err = ParseCompression(comp); err != nil {
		t.Fatal(err)
	}
	r := start(t, cfg)
	writeWAL(t, c, mb)
	waitFlushed(t, r, currentLSN(t, c).SegmentStart(1<<20), time.Minute)
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	var segs []string
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if f, ok := ParseFileName(e.Name()); ok && f.Kind == KindSegment {
			segs = append(segs, e.Name())
		}
	}
	sort.Strings(segs)
	if len(segs) < 4 {
		t.Fatalf("only %d segments", len(segs))
	}
	return dir, segs
}

func TestGet(t *testing.T) {
	dir, segs := archiveOf(t, 8, "zstd")
	ctx := context.Background()
	dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
	base := strings.TrimSuffix(segs[1], ".zst")
	if err := Get(ctx, DirSource{Dir: dir}, base, dest); err != nil {
		t.Fatal(err)
	}
	want, err := readArchiveFile(dir, segs[1])
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(dest)
	if err != nil || string(got) != string(want) {
		t.Fatalf("Get wrote %d bytes (%v), want the decompressed segment", len(got), err)
	}
	// The same through a command.
	dest2 := filepath.Join(t.TempDir(), "x")
	src := ExecSource{Command: "cat '" + dir + "'/{segment}.zst 2>/dev/null || exit 1"}
	if err := Get(ctx, src, base, dest2); err != nil {
		t.Fatal(err)
	}
	// Not found: the next segment, a history file, a name that is no WAL file name.
	for _, name := range []string{"00000001000000FF000000FF", "00000002.history", "00000001000000000000000A.partial"} {
		if err := Get(ctx, DirSource{Dir: dir}, name, dest); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get(%s): %v, want ErrNotFound", name, err)
		}
		if err := Get(ctx, src, name, dest); !errors.Is(err, ErrNotFound) {
			t.Errorf("exec Get(%s): %v, want ErrNotFound", name, err)
		}
	}
	// A failing command is not "not found".
	if err := Get(ctx, ExecSource{Command: "exit 3"}, base, dest); err == nil || errors.Is(err, ErrNotFound) {
		t.Errorf("failing command: %v", err)
	}
	// A corrupt segment (one byte flipped inside a record) is not "not found".
	raw, err := readArchiveFile(dir, segs[2])
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)/2] ^= 0xFF
	bad := t.TempDir()
	name := strings.TrimSuffix(segs[2], ".zst")
	if err := os.WriteFile(filepath.Join(bad, name), raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Get(ctx, DirSource{Dir: bad}, name, dest); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Get of a corrupt segment: %v, want ErrCorrupt", err)
	}
	// A truncated compressed file too.
	zst, _ := os.ReadFile(filepath.Join(dir, segs[2]))
	if err := os.WriteFile(filepath.Join(bad, name), zst[:len(zst)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Get(ctx, DirSource{Dir: bad}, name, dest); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Get of a truncated file: %v, want ErrCorrupt", err)
	}
	// An unreadable archive directory is not "not found" either.
	if err := Get(ctx, DirSource{Dir: filepath.Join(bad, "missing")}, name, dest); err == nil || errors.Is(err, ErrNotFound) {
		t.Errorf("Get from a missing directory: %v", err)
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(dest), ".walweave-get-*"))
	if len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

func TestVerifyFindsProblems(t *testing.T) {
	dir, segs := archiveOf(t, 8, "none")
	rep := checkVerify(t, dir)
	if rep.Segments != len(segs) || rep.First != segs[0] || rep.Last != segs[len(segs)-1] {
		t.Fatalf("report: %+v", rep)
	}
	// A flipped byte in the third segment.
	p := filepath.Join(dir, segs[2])
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2+123] ^= 0x01
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	rep, err = Verify(context.Background(), dir, VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || rep.Problems[0].Path != segs[2] {
		t.Fatalf("flipped byte in %s: %v", segs[2], rep.Problems)
	}
	b[len(b)/2+123] ^= 0x01
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	checkVerify(t, dir)
	// A removed segment.
	if err := os.Remove(filepath.Join(dir, segs[1])); err != nil {
		t.Fatal(err)
	}
	rep, err = Verify(context.Background(), dir, VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || rep.Problems[0].Path != segs[1] || !strings.Contains(rep.Problems[0].Reason, "missing") {
		t.Fatalf("removed %s: %v", segs[1], rep.Problems)
	}
	if rep.Err() == nil || !errors.Is(rep.Err(), ErrProblems) {
		t.Fatal(rep.Err())
	}
	// --from past the hole: fine.
	rep, err = Verify(context.Background(), dir, VerifyOptions{From: segs[2]})
	if err != nil || !rep.OK() {
		t.Fatalf("from %s: %v %v", segs[2], err, rep.Problems)
	}
}

func TestPrune(t *testing.T) {
	dir, segs := archiveOf(t, 8, "lz4")
	if err := os.WriteFile(filepath.Join(dir, "00000002.history"), []byte("1\t0/3000000\tno recovery target specified\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	before := strings.TrimSuffix(segs[2], ".lz4")
	names, err := Prune(context.Background(), dir, before, 0, true)
	if err != nil || len(names) != 2 || names[0] != segs[0] || names[1] != segs[1] {
		t.Fatalf("dry run: %v %v", names, err)
	}
	if _, err := os.Stat(filepath.Join(dir, segs[0])); err != nil {
		t.Fatal("dry run deleted")
	}
	names, err = Prune(context.Background(), dir, before, 0, false)
	if err != nil || len(names) != 2 {
		t.Fatalf("prune: %v %v", names, err)
	}
	for _, s := range segs[:2] {
		if _, err := os.Stat(filepath.Join(dir, s)); !os.IsNotExist(err) {
			t.Errorf("%s not deleted", s)
		}
	}
	for _, s := range append([]string{"00000002.history"}, segs[2:]...) {
		if _, err := os.Stat(filepath.Join(dir, s)); err != nil {
			t.Errorf("%s deleted: %v", s, err)
		}
	}
	if rep, err := Verify(context.Background(), dir, VerifyOptions{}); err != nil || rep.First != before {
		t.Fatalf("after prune: %v %+v", err, rep)
	}
	if _, err := Prune(context.Background(), dir, "junk", 0, false); err == nil {
		t.Fatal("prune before junk")
	}
}
