package fleet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Destination is where one node's stream goes. The fleet writes the stream, then calls Close
// (the stream is complete: flush, fsync, wait for a command's exit) and, only when the fleet
// succeeded (every node, in consistent mode; that node, in independent mode), Commit (make it
// final: rename into place). On any failure it calls Abort instead, once, at any point, also
// after Close: nothing may be left that looks like a finished backup.
type Destination interface {
	io.Writer
	Close() error
	Commit() error
	Abort(cause error)
}

// File returns a Destination factory writing to path the way walweave backup -o does: the
// stream goes to path+".tmp" (created exclusively), Close fsyncs it, Commit renames it to path
// and fsyncs the directory, Abort removes the temporary file.
func File(path string) func(ctx context.Context) (Destination, error) {
	return func(ctx context.Context) (Destination, error) {
		tmp := path + ".tmp"
		f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return nil, fmt.Errorf("create output: %w (remove a stale %s if no backup is running)", err, tmp)
		}
		return &fileDest{f: f, tmp: tmp, path: path}, nil
	}
}

type fileDest struct {
	mu        sync.Mutex // Close and Abort may run at once
	f         *os.File
	tmp, path string
	closed    bool
	committed bool
}

func (d *fileDest) Write(p []byte) (int, error) { return d.f.Write(p) }

func (d *fileDest) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	if err := d.f.Sync(); err != nil {
		d.f.Close()
		return fmt.Errorf("fsync %s: %w", d.tmp, err)
	}
	return d.f.Close()
}

func (d *fileDest) Commit() error {
	if err := os.Rename(d.tmp, d.path); err != nil {
		return err
	}
	d.committed = true
	dir, err := os.Open(filepath.Dir(d.path))
	if err != nil {
		return err
	}
	defer dir.Close()
	return dir.Sync()
}

func (d *fileDest) Abort(error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.committed {
		return
	}
	if !d.closed {
		d.closed = true
		d.f.Close()
	}
	os.Remove(d.tmp)
}

// Command returns a Destination factory running shell (with sh -c, in a process group of its
// own) per node, the stream on its standard input, WALWEAVE_NODE=<node> in its environment,
// its standard output and error to stdout and stderr (nil: discarded). Close closes its input
// and waits: a non-zero exit status fails the node. Abort sends SIGTERM to its process group
// (SIGKILL 10 seconds later) so that an uploader aborts instead of completing a partial
// object. Commit does nothing: the command's own success is its commit, so in consistent mode
// a command that exits 0 before another node's fails has completed its upload (the report
// marks the fleet failed all the same).
func Command(shell, node string, stdout, stderr io.Writer) func(ctx context.Context) (Destination, error) {
	return func(ctx context.Context) (Destination, error) {
		cmd := exec.Command("sh", "-c", shell)
		cmd.Env = append(os.Environ(), "WALWEAVE_NODE="+node)
		tail := &lastLine{w: stderr}
		cmd.Stdout, cmd.Stderr = stdout, tail
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		in, err := cmd.StdinPipe()
		if err != nil {
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("start %q: %w", shell, err)
		}
		d := &cmdDest{cmd: cmd, in: in, done: make(chan struct{}), tail: tail}
		go func() { d.err = cmd.Wait(); close(d.done) }()
		return d, nil
	}
}

type cmdDest struct {
	mu     sync.Mutex // guards closed: Close and Abort may run at once
	cmd    *exec.Cmd
	in     io.WriteCloser
	done   chan struct{}
	err    error // cmd.Wait's, valid once done is closed
	closed bool
	tail   *lastLine
}

// Write gives p to the command. When the command has exited (its input is then closed) or
// closed its input, the error is the command's exit status and its last line on stderr, not
// the pipe's "file already closed" or "broken pipe".
func (d *cmdDest) Write(p []byte) (int, error) {
	n, err := d.in.Write(p)
	if err == nil {
		return n, nil
	}
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		return n, fmt.Errorf("command %q stopped reading the stream: %w", d.cmd.Args[2], err)
	}
	if cerr := d.exitError(); cerr != nil {
		return n, cerr
	}
	return n, fmt.Errorf("command %q exited with status 0 before it read the whole stream", d.cmd.Args[2])
}

// exitError describes how the command ended (done must be closed): nil when it exited 0.
func (d *cmdDest) exitError() error { return commandExitError(d.cmd.Args[2], d.err, d.tail) }

// commandExitError describes how command shell ended (err is cmd.Wait's): its exit status
// or signal and its last line on stderr; nil when it exited 0.
func commandExitError(shell string, err error, tail *lastLine) error {
	if err == nil {
		return nil
	}
	last := ""
	if l := tail.last(); l != "" {
		last = fmt.Sprintf(" (its last line on stderr: %q)", l)
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return fmt.Errorf("command %q was killed by signal %s%s", shell, ws.Signal(), last)
		}
		return fmt.Errorf("command %q exited with status %d%s", shell, ee.ExitCode(), last)
	}
	return fmt.Errorf("command %q: %w", shell, err)
}

// OpenCommand is a RestoreNode.Open that runs shell (sh -c, in a process group of its own,
// WALWEAVE_NODE=<node> in its environment) and reads the node's stream from its standard
// output; its standard error goes to stderr (nil: discarded). The stream ends with an error
// when the command exits with a non-zero status (the status and its last line on stderr);
// when ctx ends the process group gets SIGTERM (SIGKILL 10 seconds later).
func OpenCommand(shell, node string, stderr io.Writer) func(ctx context.Context) (io.ReadCloser, error) {
	return func(ctx context.Context) (io.ReadCloser, error) {
		cmd := exec.CommandContext(ctx, "sh", "-c", shell)
		cmd.Env = append(os.Environ(), "WALWEAVE_NODE="+node)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
		cmd.WaitDelay = 10 * time.Second
		tail := &lastLine{w: stderr}
		cmd.Stderr = tail
		out, err := cmd.StdoutPipe()
		if err != nil {
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("start %q: %w", shell, err)
		}
		return &cmdSource{ReadCloser: out, cmd: cmd, shell: shell, tail: tail}, nil
	}
}

type cmdSource struct {
	io.ReadCloser
	cmd   *exec.Cmd
	shell string
	tail  *lastLine
	done  bool
	end   error // the stream's end (io.EOF or how the command failed), returned from then on
}

func (r *cmdSource) Read(p []byte) (int, error) {
	if r.end != nil {
		return 0, r.end
	}
	n, err := r.ReadCloser.Read(p)
	if err == io.EOF && !r.done {
		r.done = true
		if werr := commandExitError(r.shell, r.cmd.Wait(), r.tail); werr != nil {
			err = werr
		}
	}
	if err != nil {
		r.end = err
	}
	return n, err
}

func (r *cmdSource) Close() error {
	r.ReadCloser.Close()
	if !r.done {
		r.done = true
		_ = r.cmd.Wait()
	}
	return nil
}

// lastLine passes what a command writes on to w (nil: discards it) and keeps its last
// non-empty line.
type lastLine struct {
	mu      sync.Mutex
	w       io.Writer
	partial []byte
	line    string
}

func (l *lastLine) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		if s := strings.TrimSpace(string(l.partial[:i])); s != "" {
			l.line = s
		}
		l.partial = l.partial[i+1:]
	}
	if len(l.partial) > 4096 {
		l.partial = l.partial[len(l.partial)-4096:]
	}
	l.mu.Unlock()
	if l.w == nil {
		return len(p), nil
	}
	return l.w.Write(p)
}

func (l *lastLine) last() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s := strings.TrimSpace(string(l.partial)); s != "" {
		return s
	}
	return l.line
}

func (d *cmdDest) closeInput() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.closed {
		d.closed = true
		d.in.Close()
	}
}

func (d *cmdDest) Close() error {
	d.closeInput()
	<-d.done
	return d.exitError()
}

func (d *cmdDest) Commit() error { return nil }

func (d *cmdDest) Abort(error) {
	select {
	case <-d.done:
		return
	default:
	}
	pgid := d.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	d.closeInput()
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-d.done
	}
}
