package main

import (
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/pierrec/lz4/v4"
)

// lz4Output compresses the stream into an LZ4 frame. The lz4 writer compresses and writes
// blocks on goroutines of its own and keeps a write error of the output to itself until
// Close, so that a full disk was reported only after the whole backup had been streamed;
// lz4Output returns that error from the next Write instead.
type lz4Output struct {
	zw  *lz4.Writer
	dst *latchWriter
}

// newLZ4Output returns the compressing writer for --compress lz4[:level] (level 0: fast).
func newLZ4Output(out io.Writer, level int) (*lz4Output, error) {
	dst := &latchWriter{w: out}
	zw := lz4.NewWriter(dst)
	opts := []lz4.Option{lz4.ConcurrencyOption(runtime.GOMAXPROCS(0)), lz4.BlockSizeOption(lz4.Block4Mb)}
	if level > 0 {
		opts = append(opts, lz4.CompressionLevelOption(lz4.CompressionLevel(1<<(8+level))))
	}
	if err := zw.Apply(opts...); err != nil {
		return nil, err
	}
	return &lz4Output{zw: zw, dst: dst}, nil
}

func (o *lz4Output) Write(p []byte) (int, error) {
	if err := o.dst.error(); err != nil {
		return 0, err
	}
	n, err := o.zw.Write(p)
	if err == nil {
		err = o.dst.error()
	}
	return n, err
}

// Close writes the rest of the frame.
func (o *lz4Output) Close() error {
	err := o.zw.Close()
	if derr := o.dst.error(); derr != nil {
		err = derr
	}
	if err != nil {
		return fmt.Errorf("finish lz4 frame: %w", err)
	}
	return nil
}

// latchWriter keeps the first write error of w for lz4Output to see.
type latchWriter struct {
	w   io.Writer
	mu  sync.Mutex
	err error
}

func (l *latchWriter) Write(p []byte) (int, error) {
	n, err := l.w.Write(p)
	if err != nil {
		l.mu.Lock()
		if l.err == nil {
			l.err = err
		}
		l.mu.Unlock()
	}
	return n, err
}

func (l *latchWriter) error() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}
