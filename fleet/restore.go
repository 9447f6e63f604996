package fleet

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/walweave/walweave/restore"
	"github.com/walweave/walweave/verify"
)

// RestoreNode is one node of a fleet restore.
type RestoreNode struct {
	Name string
	// Open opens the node's stream (a file, a command's output, ...); it is closed when the
	// node's restore ends.
	Open func(ctx context.Context) (io.ReadCloser, error)
	// Dir is the data directory to create (it must not exist or be empty).
	Dir string
}

// RestoreOptions configures a fleet restore.
type RestoreOptions struct {
	// Restore is the restore.Options every node uses; Dir is set per node.
	Restore restore.Options
	// Progress, when set, is called about once a second per node with the bytes read so far
	// (from several goroutines: it must be safe for concurrent use).
	Progress func(node string, bytesRead int64)
	// AutoOwner: when Restore.Owner is nil and the process runs as root, each node's files go
	// to the owner restore.ChooseOwner picks for its directory and stream (the owner of the
	// directory, else the one recorded in the stream, "postgres"), as walweave restore does
	// as root: PostgreSQL refuses to start on a data directory it does not own. The node's
	// report says which (Owner).
	AutoOwner bool
}

// RestoreNodeReport is one node's part of a RestoreReport.
type RestoreNodeReport struct {
	Name     string  `json:"name"`
	State    State   `json:"state"`
	Dir      string  `json:"dir"`
	Bytes    int64   `json:"bytes"`
	Duration Seconds `json:"duration_seconds"`
	Error    string  `json:"error,omitempty"`
	// Owner describes who was given the files (Restore.Owner or AutoOwner), or is empty.
	Owner string `json:"owner,omitempty"`
	// Err is the node's error; Verify the restore package's report (nil when it failed early).
	Err    error          `json:"-"`
	Verify *verify.Report `json:"-"`
}

// RestoreReport is what Restore returns.
type RestoreReport struct {
	Started  time.Time           `json:"started"`
	Duration Seconds             `json:"duration_seconds"`
	OK       bool                `json:"ok"`
	Nodes    []RestoreNodeReport `json:"nodes"`
}

// Restore restores every node at once with restore.Extract, each stream checked while it is
// written. The first failure cancels the other nodes; every failed or cancelled node's
// directory is cleaned by restore.Extract (unless Restore.NoClean). A consistent fleet
// backup's streams carry their recovery settings: each directory starts, recovers to the
// fleet's restore point and promotes.
func Restore(ctx context.Context, nodes []RestoreNode, opts RestoreOptions) (RestoreReport, error) {
	rep := RestoreReport{Started: time.Now()}
	for _, n := range nodes {
		rep.Nodes = append(rep.Nodes, RestoreNodeReport{Name: n.Name, Dir: n.Dir, State: StatePending})
	}
	if len(nodes) == 0 {
		return rep, errors.New("fleet: no nodes")
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var mu sync.Mutex
	var first error
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			cr := &countingReader{}
			owner := ""
			stop := make(chan struct{})
			if opts.Progress != nil {
				go func() {
					t := time.NewTicker(time.Second)
					defer t.Stop()
					for {
						select {
						case <-stop:
							opts.Progress(n.Name, cr.n.Load())
							return
						case <-t.C:
							opts.Progress(n.Name, cr.n.Load())
						}
					}
				}()
			}
			vr, err := func() (*verify.Report, error) {
				rc, err := n.Open(ctx)
				if err != nil {
					return nil, fmt.Errorf("open the stream: %w", err)
				}
				defer rc.Close()
				cr.r = rc
				o := opts.Restore
				o.Dir = n.Dir
				var src io.Reader = cr
				if o.Owner != nil {
					owner = restore.DescribeOwner(*o.Owner)
				} else if opts.AutoOwner && os.Geteuid() == 0 {
					br := bufio.NewReaderSize(cr, 64<<10)
					head, _ := br.Peek(restore.OwnerHeadSize)
					if ow, desc, ok := restore.ChooseOwner(n.Dir, head); ok {
						o.Owner, owner = &ow, desc
					}
					src = br
				}
				return restore.Extract(ctx, src, o)
			}()
			close(stop)
			mu.Lock()
			defer mu.Unlock()
			r := &rep.Nodes[i]
			r.Bytes, r.Duration, r.Verify, r.Owner = cr.n.Load(), Seconds(time.Since(start)), vr, owner
			if err == nil {
				r.State = StateDone
				return
			}
			r.State = StateFailed
			if first != nil {
				r.State = StateCancelled
				if errors.Is(err, context.Canceled) && errors.Is(context.Cause(ctx), errCancelled) {
					err = context.Cause(ctx)
				}
			} else {
				err = &Error{Node: n.Name, Err: err}
				first = err
				cancel(cancelledBy(n.Name))
			}
			r.Err, r.Error = err, err.Error()
		}()
	}
	wg.Wait()
	rep.Duration = Seconds(time.Since(rep.Started))
	rep.OK = first == nil
	return rep, first
}

type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// OpenFile is a RestoreNode.Open that reads a file.
func OpenFile(path string) func(ctx context.Context) (io.ReadCloser, error) {
	return func(context.Context) (io.ReadCloser, error) { return os.Open(path) }
}
