package verify

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// MemberFunc receives each member that passed Checker.Begin's safety checks, with its
// cleaned name (no "./" prefix, no trailing "/"). Reading content feeds the checker; what
// the function leaves unread is read (and checked) after it returns. An error from the
// function stops the scan and is returned by Scan, unless it came from reading content (a
// truncated stream), which becomes a problem.
type MemberFunc func(name string, h *tar.Header, content io.Reader) error

// scanBufs holds Scan's 1 MiB read buffers.
var scanBufs = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

// countReader counts the bytes read and the zero bytes at the end of what was read, which is
// how Scan tells a tar end-of-archive marker from a stream cut at a member boundary
// (archive/tar returns io.EOF for both). It hides any Seek method so that archive/tar reads
// every byte.
type countReader struct {
	r        io.Reader
	n        int64
	zeroTail int64
	err      error
}

func (cr *countReader) Read(p []byte) (int, error) {
	n, err := cr.r.Read(p)
	if n > 0 {
		cr.n += int64(n)
		q := p[:n]
		if len(q) > 1024 {
			q = q[len(q)-1024:]
		}
		i := len(q) - 1
		for i >= 0 && q[i] == 0 {
			i--
		}
		switch {
		case i >= 0:
			cr.zeroTail = int64(len(q) - 1 - i)
		case n >= 1024:
			cr.zeroTail = 1024
		default:
			cr.zeroTail = min(cr.zeroTail+int64(n), 1024)
		}
	}
	if err != nil && err != io.EOF && cr.err == nil {
		cr.err = err
	}
	return n, err
}

// memberReader reads a member's content from the tar reader and feeds it to the checker.
type memberReader struct {
	ctx context.Context
	tr  *tar.Reader
	c   *Checker
	err error
}

func (mr *memberReader) Read(p []byte) (int, error) {
	if mr.err != nil {
		return 0, mr.err
	}
	if err := mr.ctx.Err(); err != nil {
		mr.err = err
		return 0, err
	}
	n, err := mr.tr.Read(p)
	if n > 0 {
		mr.c.Write(p[:n])
	}
	if err != nil && err != io.EOF {
		mr.err = err
	}
	return n, err
}

// Scan reads a tar stream from r to its end, checks every member and, unless fn is nil,
// hands each safe member to fn. It returns the finished report. The error is for r's own
// I/O errors, ctx, and errors of fn; a truncated or malformed stream is a problem in the
// report. When Scan returns an error, the report is partial (Report.Complete is false).
func (c *Checker) Scan(ctx context.Context, r io.Reader, fn MemberFunc) (*Report, error) {
	ir := newInterruptibleReader(ctx, r)
	cr := &countReader{r: ir}
	tr := tar.NewReader(cr)
	bp := scanBufs.Get().(*[]byte)
	defer func() {
		if !ir.abandoned() { // else a Read left running may still write into it
			scanBufs.Put(bp)
		}
	}()
	buf := *bp
	partial := func(err error) (*Report, error) {
		c.rep.StreamBytes = cr.n
		c.rep.Duration = time.Since(c.start)
		c.rep.WALSegments, c.rep.WALBytes, c.rep.WALRecords = c.wal.count, c.wal.bytes, c.wal.records
		return &c.rep, err
	}
	readErr := func() error {
		if cr.err != nil {
			return fmt.Errorf("verify: reading the stream: %w", cr.err)
		}
		return nil
	}
	for {
		if err := ctx.Err(); err != nil {
			return partial(err)
		}
		boundary := (cr.n + 511) &^ 511
		h, err := tr.Next()
		stuck := false
		if errors.Is(err, tar.ErrInsecurePath) && h != nil {
			// GODEBUG=tarinsecurepath=0: archive/tar stops here; the checker reports the name.
			err, stuck = nil, true
		}
		if err != nil {
			if e := readErr(); e != nil {
				return partial(e)
			}
			switch {
			case err == io.EOF && cr.n-boundary >= 1024 && cr.zeroTail >= 1024:
				c.EndOfArchive()
				c.trailing(cr, buf)
				if e := readErr(); e != nil {
					return partial(e)
				}
			case err == io.EOF && cr.n == boundary:
				c.Abort(fmt.Sprintf("the stream ends at byte %d, at a member boundary, without the tar end-of-archive marker: truncated or incomplete", cr.n))
			case err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF):
				c.Abort(fmt.Sprintf("the stream is truncated at byte %d (inside a tar header or the end-of-archive marker)", cr.n))
			default:
				c.Abort(fmt.Sprintf("malformed tar at byte %d: %v", boundary, err))
			}
			break
		}
		berr := c.Begin(h)
		m := c.cur
		body := &memberReader{ctx: ctx, tr: tr, c: c}
		if berr == nil && fn != nil {
			if ferr := fn(m.name, h, body); ferr != nil && body.err == nil {
				return partial(ferr)
			}
		}
		// The content of a refused member is skipped by tr.Next, unread: a sparse member
		// would expand to its logical size, all zeros, without input.
		for berr == nil && body.err == nil {
			if _, err := body.Read(buf); err == io.EOF {
				break
			}
		}
		if body.err != nil {
			if e := readErr(); e != nil {
				return partial(e)
			}
			if ctx.Err() != nil {
				return partial(ctx.Err())
			}
			if errors.Is(body.err, io.ErrUnexpectedEOF) {
				c.Abort(fmt.Sprintf("the stream is truncated at byte %d, inside member %q (%d of its %d bytes)", cr.n, m.name, m.n, m.size))
			} else {
				c.Abort(fmt.Sprintf("reading member %q: %v", m.name, body.err))
			}
			c.End()
			break
		}
		c.End()
		if stuck {
			c.Abort("archive/tar refuses to read past an insecure member name (GODEBUG tarinsecurepath=0)")
			break
		}
	}
	c.rep.StreamBytes = cr.n
	return c.Finish(), nil
}

// trailing reads what follows the end-of-archive marker: zero padding (tar blocking) is
// fine, anything else is a problem.
func (c *Checker) trailing(cr *countReader, buf []byte) {
	start := cr.n
	for {
		n, err := cr.Read(buf)
		for i, b := range buf[:n] {
			if b != 0 {
				c.problem("", fmt.Sprintf("non-zero data at byte %d, after the tar end-of-archive marker (at byte %d)", cr.n-int64(n)+int64(i), start))
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// Stream reads a walweave backup stream from r once and checks it (see the package
// documentation). It returns an error only for r's I/O errors, ctx and invalid options;
// problems with the content are in the report (Report.OK, Report.Problems).
//
// When the manifest uses a SHA checksum that was not computed on the way (see
// Options.Algorithm) and r is a seekable file, Stream reads it a second time to compare
// those checksums.
func Stream(ctx context.Context, r io.Reader, opts Options) (*Report, error) {
	c, err := NewChecker(opts)
	if err != nil {
		return nil, err
	}
	startOff := int64(-1)
	seeker, _ := r.(io.Seeker)
	if seeker != nil {
		if off, err := seeker.Seek(0, io.SeekCurrent); err == nil {
			startOff = off
		}
	}
	rep, err := c.Scan(ctx, r, nil)
	if err != nil {
		return rep, err
	}
	if rep.ChecksumsNotVerified > 0 && startOff >= 0 {
		if _, err := seeker.Seek(startOff, io.SeekStart); err == nil {
			c.log.Info("reading the stream again for its checksums", "algorithm", rep.ChecksumAlgorithm, "files", rep.ChecksumsNotVerified)
			if err := c.recheckStream(ctx, r); err != nil {
				return rep, err
			}
		}
	}
	rep.Duration = time.Since(c.start)
	return rep, nil
}

// recheckStream reads the stream again and computes the checksums of the files that are
// awaiting one.
func (c *Checker) recheckStream(ctx context.Context, r io.Reader) error {
	tr := tar.NewReader(&countReader{r: r})
	for len(c.unverified) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if err != nil {
			break // the first pass reported what is wrong with the tar
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		name, why := CleanName(h.Name, h.Typeflag)
		if why != "" {
			continue
		}
		if _, ok := c.unverified[name]; !ok {
			continue
		}
		if err := c.RecheckFile(name, &ctxReader{ctx, tr}); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				break
			}
			return err
		}
	}
	if n := len(c.unverified); n > 0 {
		c.rep.Warnings = append(c.rep.Warnings, fmt.Sprintf("the second read of the stream did not reach %d files", n))
	}
	return nil
}

// interruptibleReader reads r so that a Read blocked on an input that sends nothing (a
// stalled pipe or FIFO) returns ctx's error when ctx ends: Scan, and so a CLI interrupted by
// SIGINT, does not wait for the next byte. With a ctx that can end, each Read runs in a
// goroutine, straight into the caller's p (no copy: verifying is about as fast as copying
// memory). A Read abandoned that way may still write into its p until the underlying Read
// returns, so such a buffer must not be used again: the reader reports it (abandoned), Scan
// then keeps its own buffer out of the pool, and every other buffer that reaches it (archive/
// tar's, restore's) belongs to the failed call alone.
type interruptibleReader struct {
	ctx context.Context
	r   io.Reader
	res chan readResult
	err error // set once a Read was abandoned
}

type readResult struct {
	n   int
	err error
}

func newInterruptibleReader(ctx context.Context, r io.Reader) *interruptibleReader {
	return &interruptibleReader{ctx: ctx, r: r, res: make(chan readResult, 1)}
}

func (x *interruptibleReader) Read(p []byte) (int, error) {
	if x.err != nil {
		return 0, x.err
	}
	done := x.ctx.Done()
	if done == nil { // a ctx that never ends: nothing to interrupt
		return x.r.Read(p)
	}
	if err := x.ctx.Err(); err != nil {
		return 0, err
	}
	go func() {
		n, err := x.r.Read(p)
		x.res <- readResult{n, err}
	}()
	select {
	case res := <-x.res:
		return res.n, res.err
	case <-done:
		x.err = x.ctx.Err()
		return 0, x.err
	}
}

// abandoned reports whether a Read was left running when ctx ended.
func (x *interruptibleReader) abandoned() bool { return x.err != nil }

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r *ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}
