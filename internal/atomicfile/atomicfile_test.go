package atomicfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func TestCommitAbort(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out")
	f, err := Create(path, Options{Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("data")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("%s exists before Commit: %v", path, err)
	}
	if _, err := Create(path, Options{Exclusive: true}); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("a second exclusive Create: %v, want fs.ErrExist", err)
	}
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	f.Abort() // after Commit: nothing to undo
	if b, err := os.ReadFile(path); err != nil || string(b) != "data" {
		t.Fatalf("after Commit: %q, %v", b, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v", fi.Mode(), err)
	}
	if _, err := os.Stat(TempName(path)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("temporary file left: %v", err)
	}

	// Abort from another goroutine while Close runs: the temporary file goes, path stays.
	g, err := Create(path, Options{Perm: 0o640})
	if err != nil {
		t.Fatal(err)
	}
	g.Write([]byte("partial"))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); g.Abort() }()
	g.Close()
	wg.Wait()
	if _, err := os.Stat(TempName(path)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("temporary file left after Abort: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "data" {
		t.Fatalf("Abort touched the committed file: %q", b)
	}
}

func TestWriteFileReplacesAndRefusesSymlink(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m")
	os.WriteFile(TempName(path), []byte("stale"), 0o600)
	if err := WriteFile(path, []byte("one"), Options{Perm: 0o644, NoSync: true}); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o644 {
		t.Fatalf("mode %v", fi.Mode())
	}
	if err := WriteFile(path, []byte("two"), Options{}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "two" {
		t.Fatalf("got %q", b)
	}
	target := filepath.Join(dir, "target")
	if err := os.Symlink(target, TempName(path)); err != nil {
		t.Fatal(err)
	}
	if _, err := Create(path, Options{Exclusive: true}); err == nil {
		t.Fatal("Create wrote through a symbolic link")
	}
	if _, err := os.Stat(target); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("the link's target was created")
	}
}
