// Package atomicfile writes a file under a temporary name (NAME.tmp) and renames it into place
// only when it is complete and on disk: a reader of NAME never sees a partial file, and a
// crash leaves at most NAME.tmp behind. It is how every file walweave finishes is written
// (a backup with -o, a fleet node's file, --manifest-out, a restored chain's backup_manifest
// and postgresql.auto.conf).
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
)

// Options tune Create.
type Options struct {
	// Perm is the file's mode (0o600 when 0), applied exactly (not narrowed by the umask).
	Perm os.FileMode
	// Exclusive fails Create with an error matching fs.ErrExist when NAME.tmp exists
	// (another writer, or one killed before it removed it); otherwise a stale NAME.tmp is
	// removed first.
	Exclusive bool
	// NoSync leaves out the fsyncs (of the file and of its directory).
	NoSync bool
}

// File is a file being written under its temporary name. Close and Abort may be called from
// different goroutines; Write and Commit from the writer's.
type File struct {
	f         *os.File
	tmp, path string
	noSync    bool

	mu        sync.Mutex
	closed    bool
	closeErr  error
	committed bool
}

// TempName is the temporary name path is written under.
func TempName(path string) string { return path + ".tmp" }

// Create starts writing path: the file is created as TempName(path), never through a
// symbolic link.
func Create(path string, opts Options) (*File, error) {
	perm := opts.Perm
	if perm == 0 {
		perm = 0o600
	}
	tmp := TempName(path)
	if !opts.Exclusive {
		if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, perm)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return nil, fmt.Errorf("refusing to write %s: it is a symbolic link", tmp)
		}
		return nil, err
	}
	if perm&0o077 != 0 {
		if err := f.Chmod(perm); err != nil {
			f.Close()
			os.Remove(tmp)
			return nil, err
		}
	}
	return &File{f: f, tmp: tmp, path: path, noSync: opts.NoSync}, nil
}

// Name is the temporary file's path.
func (f *File) Name() string { return f.tmp }

func (f *File) Write(p []byte) (int, error) { return f.f.Write(p) }

// Close fsyncs and closes the temporary file (once; later calls return the first result).
func (f *File) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.closeLocked()
}

func (f *File) closeLocked() error {
	if f.closed {
		return f.closeErr
	}
	f.closed = true
	if !f.noSync {
		if err := f.f.Sync(); err != nil {
			f.f.Close()
			f.closeErr = fmt.Errorf("fsync %s: %w", f.tmp, err)
			return f.closeErr
		}
	}
	f.closeErr = f.f.Close()
	return f.closeErr
}

// Commit closes the file (Close) and renames it to its final name, then fsyncs the
// directory.
func (f *File) Commit() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.closeLocked(); err != nil {
		return err
	}
	if err := os.Rename(f.tmp, f.path); err != nil {
		return err
	}
	f.committed = true
	if f.noSync {
		return nil
	}
	return SyncDir(filepath.Dir(f.path))
}

// Abort closes and removes the temporary file, unless Commit renamed it already.
func (f *File) Abort() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.committed {
		return
	}
	if !f.closed {
		f.closed = true
		f.f.Close()
	}
	os.Remove(f.tmp)
}

// WriteFile writes data to path the same way: TempName(path), fsynced, renamed.
func WriteFile(path string, data []byte, opts Options) error {
	f, err := Create(path, opts)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Abort()
		return err
	}
	if err := f.Commit(); err != nil {
		f.Abort()
		return err
	}
	return nil
}

// SyncDir fsyncs a directory, so that a rename in it is on disk (file systems that cannot
// fsync a directory, EINVAL, are taken as done).
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}
