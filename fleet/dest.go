package fleet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/walweave/walweave/internal/atomicfile"
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
		f, err := atomicfile.Create(path, atomicfile.Options{Exclusive: true})
		if err != nil {
			return nil, fmt.Errorf("create output: %w (remove a stale %s if no backup is running)", err, atomicfile.TempName(path))
		}
		return fileDest{f}, nil
	}
}

// fileDest is an atomicfile.File as a Destination.
type fileDest struct{ f *atomicfile.File }

func (d fileDest) Write(p []byte) (int, error) { return d.f.Write(p) }
func (d fileDest) Close() error                { return d.f.Close() }
func (d fileDest) Commit() error               { return d.f.Commit() }
func (d fileDest) Abort(error)                 { d.f.Abort() }

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
		cmd.Stdout, cmd.Stderr = stdout, stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		in, err := cmd.StdinPipe()
		if err != nil {
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("start %q: %w", shell, err)
		}
		d := &cmdDest{cmd: cmd, in: in, done: make(chan struct{})}
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
}

func (d *cmdDest) Write(p []byte) (int, error) { return d.in.Write(p) }

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
	if d.err != nil {
		var ee *exec.ExitError
		if errors.As(d.err, &ee) {
			return fmt.Errorf("command %q: %s", d.cmd.Args[2], ee.ProcessState)
		}
		return fmt.Errorf("command %q: %w", d.cmd.Args[2], d.err)
	}
	return nil
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
