package restore

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
)

// smallFile is the size up to which a file is read into a buffer and written by a worker
// while the reader goes on; bigger files are written by the reader and only their fsync and
// close go to a worker.
const smallFile = 1 << 20

// job is one file for a worker: data to write to a new file at path, or an open file to
// fsync and close.
type job struct {
	path string
	perm os.FileMode
	data []byte
	buf  []byte // returned to the pool once written
	f    *os.File
}

// pool writes files with a few workers. Memory is bounded by its buffers (at most maxBufs
// of smallFile bytes) and the job queue.
type pool struct {
	sync    bool
	jobs    chan job
	bufs    chan []byte
	nbufs   int
	maxBufs int
	wg      sync.WaitGroup

	mu      sync.Mutex
	err     error
	failed  chan struct{}
	closed  bool
	written int
}

func newPool(workers int, doSync bool) *pool {
	p := &pool{
		sync:    doSync,
		jobs:    make(chan job, workers*2),
		maxBufs: workers * 4,
		failed:  make(chan struct{}),
	}
	p.bufs = make(chan []byte, p.maxBufs)
	for i := 0; i < workers; i++ {
		p.wg.Add(1)
		go p.worker()
	}
	return p
}

func (p *pool) fail(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err == nil {
		p.err = err
		close(p.failed)
	}
}

// Err returns the first error of a worker.
func (p *pool) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

func (p *pool) worker() {
	defer p.wg.Done()
	for j := range p.jobs {
		if p.Err() != nil {
			p.drop(j)
			continue
		}
		if err := p.do(j); err != nil {
			p.fail(err)
		}
	}
}

func (p *pool) drop(j job) {
	if j.f != nil {
		j.f.Close()
	}
	if j.buf != nil {
		p.bufs <- j.buf
	}
}

func (p *pool) do(j job) error {
	if j.f == nil {
		f, err := createFile(j.path, j.perm)
		if err != nil {
			p.bufs <- j.buf
			return err
		}
		_, err = f.Write(j.data)
		p.bufs <- j.buf
		if err != nil {
			f.Close()
			return fmt.Errorf("restore: write %s: %w", j.path, err)
		}
		j.f = f
	}
	if p.sync {
		if err := j.f.Sync(); err != nil {
			j.f.Close()
			return fmt.Errorf("restore: fsync %s: %w", j.f.Name(), err)
		}
	}
	if err := j.f.Close(); err != nil {
		return fmt.Errorf("restore: close %s: %w", j.f.Name(), err)
	}
	p.mu.Lock()
	p.written++
	p.mu.Unlock()
	return nil
}

// buffer returns a smallFile-byte buffer, waiting for one to come back when maxBufs are in
// use. It returns nil when a worker failed.
func (p *pool) buffer() []byte {
	select {
	case b := <-p.bufs:
		return b
	default:
	}
	if p.nbufs < p.maxBufs {
		p.nbufs++
		return make([]byte, smallFile)
	}
	select {
	case b := <-p.bufs:
		return b
	case <-p.failed:
		return nil
	}
}

// submit queues a job; it returns the workers' error instead when one failed.
func (p *pool) submit(j job) error {
	select {
	case p.jobs <- j:
		return nil
	case <-p.failed:
		p.drop(j)
		return p.Err()
	}
}

// wait closes the queue, waits for the workers and returns their first error.
func (p *pool) wait() error {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.jobs)
	}
	p.mu.Unlock()
	p.wg.Wait()
	return p.Err()
}

// createFile creates a new file, never following a symbolic link and never reusing an
// existing file.
func createFile(path string, perm os.FileMode) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, perm)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return nil, fmt.Errorf("restore: refusing to write %s: it is a symbolic link", path)
		}
		return nil, fmt.Errorf("restore: %w", err)
	}
	if perm&0o077 != 0 {
		if err := f.Chmod(perm); err != nil {
			f.Close()
			return nil, fmt.Errorf("restore: %w", err)
		}
	}
	return f, nil
}
