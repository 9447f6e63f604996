package walarchive

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Sink is where the archiver stores what it receives: complete WAL segments (under their file
// name with the compression suffix) and timeline history files. An agent implements it for its
// object store.
type Sink interface {
	// Store stores data under name durably: once it returns nil, a crash of the process, its
	// host or the store loses nothing, because the archiver then reports the WAL as flushed and
	// the server may recycle it. Store may be called again for a name it stored (after a
	// restart of the archiver) and then replaces it with the same content. An error is retried
	// with backoff (Config.RetryFor); ctx ends a call that has to give up.
	Store(ctx context.Context, name string, data []byte) error
}

// Lister is a Sink that can list what it holds: the archiver then starts after the newest
// complete segment stored rather than at the replication slot's restart_lsn.
type Lister interface {
	// List returns the names of the files stored (any order).
	List(ctx context.Context) ([]string, error)
}

// PartialSink is a Sink that also keeps the segment in progress as <name>.partial, written as
// the WAL arrives (and made durable before each flush report with Config.Synchronous). Its
// WritePartial, SyncPartial and ClosePartial calls come from one goroutine; RemovePartial from
// another.
type PartialSink interface {
	Sink
	// WritePartial writes p at off in the partial file of segment name; a name other than the
	// previous call's starts a new partial file (the previous one is closed).
	WritePartial(name string, off int64, p []byte) error
	// SyncPartial makes what WritePartial wrote durable.
	SyncPartial() error
	// ClosePartial makes the partial file durable and closes it.
	ClosePartial() error
	// RemovePartial removes the partial file of segment name, once the segment is stored.
	RemovePartial(name string) error
	// CompletePartial makes the partial file of segment name, which WritePartial filled with
	// the whole segment, the complete segment file name, durably (instead of a Store of the
	// same bytes: an uncompressed archive writes each segment once).
	CompletePartial(name string) error
}

// DirSink stores the archive in a local directory: complete segments as DIR/<name> written to
// a temporary file, fsynced, renamed and the directory fsynced; the segment in progress as
// DIR/<segment>.partial. It implements Sink, Lister and PartialSink.
type DirSink struct {
	dir string

	// the partial file in progress (one goroutine)
	pname string
	pf    *os.File
}

// tmpPrefix starts the name of DirSink's temporary files.
const tmpPrefix = ".walweave-tmp-"

// NewDirSink returns a DirSink for dir, which is created (0700) when missing. Temporary files
// a killed archiver left behind are removed.
func NewDirSink(dir string) (*DirSink, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("walarchive: archive directory: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("walarchive: archive directory: %w", err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), tmpPrefix) {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
	return &DirSink{dir: dir}, nil
}

// Dir returns the directory.
func (d *DirSink) Dir() string { return d.dir }

// Fetch implements Source (as DirSource does): the archiver reads the newest segment back to
// check that the archive is of the server's cluster.
func (d *DirSink) Fetch(ctx context.Context, name string) ([]byte, error) {
	return DirSource{Dir: d.dir}.Fetch(ctx, name)
}

// Store implements Sink.
func (d *DirSink) Store(ctx context.Context, name string, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := writeFileAtomic(d.dir, name, data); err != nil {
		return fmt.Errorf("walarchive: store %s: %w", name, err)
	}
	return nil
}

// writeFileAtomic writes dir/name through a temporary file, fsync, rename and a directory fsync.
func writeFileAtomic(dir, name string, data []byte) (err error) {
	f, err := os.CreateTemp(dir, tmpPrefix+name+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	df, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = df.Sync()
	if cerr := df.Close(); err == nil {
		err = cerr
	}
	return err
}

// List implements Lister.
func (d *DirSink) List(ctx context.Context) ([]string, error) {
	ents, err := os.ReadDir(d.dir)
	if err != nil {
		return nil, fmt.Errorf("walarchive: list %s: %w", d.dir, err)
	}
	out := make([]string, 0, len(ents))
	for _, e := range ents {
		if e.Type().IsRegular() {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// WritePartial implements PartialSink.
func (d *DirSink) WritePartial(name string, off int64, p []byte) error {
	if name != d.pname || d.pf == nil {
		// The previous segment is made durable by Store or CompletePartial: no fsync here, on
		// the receiving goroutine.
		if d.pf != nil {
			_ = d.pf.Close()
			d.pf = nil
		}
		f, err := os.OpenFile(filepath.Join(d.dir, name+".partial"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
		if err != nil {
			return fmt.Errorf("walarchive: partial segment: %w", err)
		}
		d.pf, d.pname = f, name
	}
	if _, err := d.pf.WriteAt(p, off); err != nil {
		return fmt.Errorf("walarchive: partial segment %s.partial: %w", name, err)
	}
	return nil
}

// SyncPartial implements PartialSink.
func (d *DirSink) SyncPartial() error {
	if d.pf == nil {
		return nil
	}
	if err := d.pf.Sync(); err != nil {
		return fmt.Errorf("walarchive: partial segment %s.partial: fsync: %w", d.pname, err)
	}
	return nil
}

// ClosePartial implements PartialSink.
func (d *DirSink) ClosePartial() error {
	if d.pf == nil {
		return nil
	}
	f := d.pf
	d.pf = nil
	err := f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("walarchive: partial segment %s.partial: %w", d.pname, err)
	}
	return syncDir(d.dir)
}

// RemovePartial implements PartialSink.
func (d *DirSink) RemovePartial(name string) error {
	err := os.Remove(filepath.Join(d.dir, name+".partial"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("walarchive: remove partial segment: %w", err)
	}
	return nil
}

// ExecSink stores each file by running a shell command (sh -c) with the file's content on
// stdin and every {segment} in the command replaced by the file name (with the compression
// suffix). Exit status 0 means stored durably; anything else is a failure, reported with the
// end of the command's stderr.
type ExecSink struct {
	// Command is the shell command.
	Command string
	// Env is added to the command's environment.
	Env []string
}

// Store implements Sink.
func (e *ExecSink) Store(ctx context.Context, name string, data []byte) error {
	cmd := shellCommand(ctx, strings.ReplaceAll(e.Command, "{segment}", name))
	cmd.Env = append(os.Environ(), e.Env...)
	cmd.Stdin = bytes.NewReader(data)
	var stderr tailBuffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("walarchive: store %s: command %q: %w%s", name, e.Command, err, stderr.suffix())
	}
	return nil
}

// shellCommand runs s with sh -c in a process group of its own, so that cancelling ctx ends
// the commands the shell started too.
func shellCommand(ctx context.Context, s string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", s)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// tailBuffer keeps the last 2 KiB written to it.
type tailBuffer struct{ b []byte }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 2048 {
		t.b = append(t.b[:0], t.b[len(t.b)-2048:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) suffix() string {
	s := strings.Join(strings.Fields(string(t.b)), " ")
	if s == "" {
		return ""
	}
	return ": " + s
}

// CompletePartial implements PartialSink: fsync, rename NAME.partial to NAME, fsync the
// directory.
func (d *DirSink) CompletePartial(name string) error {
	p := filepath.Join(d.dir, name+".partial")
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("walarchive: complete %s: %w", name, err)
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(p, filepath.Join(d.dir, name))
	}
	if err == nil {
		err = syncDir(d.dir)
	}
	if err != nil {
		return fmt.Errorf("walarchive: complete %s: %w", name, err)
	}
	return nil
}
