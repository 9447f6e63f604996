package main

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/klauspost/compress/zstd"

	"github.com/walweave/walweave/internal/lz4frame"
)

// input is the stream verify and restore read: a file or stdin, decompressed when it starts
// with the magic of zstd, gzip or lz4. From a regular file it is seekable (a decompressed
// file is read again from the start), so that verify can read it twice for SHA checksums.
type input struct {
	io.Reader
	name     string // "stdin" or the file name
	format   string // "" for a plain tar, else the compression
	seekable bool
	close    func()
}

// magics are the compressed formats recognized by their first bytes.
var magics = []struct {
	name, magic string
	decode      bool
	tool        string
}{
	{"zstd", "\x28\xb5\x2f\xfd", true, "zstd -dc"},
	{"gzip", "\x1f\x8b", true, "gzip -dc"},
	{"lz4", "\x04\x22\x4d\x18", true, "lz4 -dc"},
	{"lz4 (legacy format)", "\x02\x21\x4c\x18", false, "lz4 -dc"},
	{"xz", "\xfd7zXZ\x00", false, "xz -dc"},
	{"bzip2", "BZh", false, "bzip2 -dc"},
	{"zip", "PK\x03\x04", false, "unzip -p"},
	{"7z", "7z\xbc\xaf\x27\x1c", false, "7z x -so"},
}

// openInput opens the single FILE|- argument (stdin when absent). It refuses a terminal
// stdin (nothing would ever come) and names compressed formats it cannot decode.
func openInput(args []string, stdin io.Reader) (*input, error) {
	if len(args) > 1 {
		return nil, fmt.Errorf("one FILE at most, got %d: %s", len(args), strings.Join(args, " "))
	}
	in := &input{name: "stdin", close: func() {}}
	var src io.Reader = stdin
	if len(args) == 1 && args[0] != "-" {
		f, err := os.Open(args[0])
		if err != nil {
			return nil, err
		}
		if fi, err := f.Stat(); err == nil && fi.IsDir() {
			f.Close()
			return nil, fmt.Errorf("%s is a directory; give a backup stream (a tar file) or pipe it in", args[0])
		}
		src, in.name, in.close = f, args[0], func() { f.Close() }
	} else if isTerminal(stdinWriter(stdin)) {
		return nil, errors.New("refusing to read a backup stream from a terminal; give FILE or pipe the stream in (zstd -dc base.tar.zst | walweave ...)")
	}
	if f, ok := src.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
			if off, err := f.Seek(0, io.SeekCurrent); err == nil {
				return in.openSeekable(f, off)
			}
		}
	}
	p := newPeekReader(src)
	magic, _ := p.peek(8)
	dec, err := in.decoder(magic, p)
	if err != nil {
		in.close()
		return nil, err
	}
	in.Reader = dec
	return in, nil
}

// openSeekable reads the magic of a regular file at off and returns a reader that can go
// back to off: the file itself for a tar, a fresh decompressor for a compressed file.
func (in *input) openSeekable(f *os.File, off int64) (*input, error) {
	magic := make([]byte, 8)
	n, _ := f.ReadAt(magic, off)
	magic = magic[:n]
	fresh := func() (io.Reader, error) {
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			return nil, err
		}
		return in.decoder(magic, f)
	}
	if _, err := fresh(); err != nil {
		in.close()
		return nil, err
	}
	in.seekable = true
	if in.format == "" {
		in.Reader = f
		return in, nil
	}
	r, _ := fresh()
	in.Reader = &rewinder{r: r, open: fresh}
	return in, nil
}

// decoder returns r decompressed according to its first bytes (magic), or an error naming a
// format it does not decode. It sets in.format.
func (in *input) decoder(magic []byte, r io.Reader) (io.Reader, error) {
	for _, m := range magics {
		if !bytes.HasPrefix(magic, []byte(m.magic)) {
			continue
		}
		in.format = m.name
		if !m.decode {
			return nil, fmt.Errorf("%s is %s-compressed, which walweave does not decode; decompress it on the way in: %s FILE | walweave ...", in.name, m.name, m.tool)
		}
		switch m.name {
		case "zstd":
			d, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
			if err != nil {
				return nil, fmt.Errorf("%s: zstd: %w", in.name, err)
			}
			prev := in.close
			in.close = func() { d.Close(); prev() }
			return &namedReader{r: d, what: "zstd"}, nil
		case "gzip":
			g, err := gzip.NewReader(r)
			if err != nil {
				return nil, fmt.Errorf("%s: gzip: %w", in.name, err)
			}
			return &namedReader{r: g, what: "gzip"}, nil
		case "lz4":
			return lz4frame.NewReader(r), nil
		}
	}
	in.format = ""
	return r, nil
}

// namedReader prefixes a decompressor's errors with its format.
type namedReader struct {
	r    io.Reader
	what string
}

func (n *namedReader) Read(p []byte) (int, error) {
	k, err := n.r.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("%s-compressed input: %w", n.what, err)
	}
	return k, err
}

// rewinder makes a decompressed file seekable to where it was opened (the only seek
// verify.Stream needs for its second read) by decompressing it again.
type rewinder struct {
	r    io.Reader
	open func() (io.Reader, error)
	pos  int64
}

func (w *rewinder) Read(p []byte) (int, error) {
	n, err := w.r.Read(p)
	w.pos += int64(n)
	return n, err
}

func (w *rewinder) Seek(off int64, whence int) (int64, error) {
	switch {
	case whence == io.SeekCurrent && off == 0:
		return w.pos, nil
	case whence == io.SeekStart && off == 0:
		r, err := w.open()
		if err != nil {
			return 0, err
		}
		w.r, w.pos = r, 0
		return 0, nil
	}
	return 0, errors.New("walweave: a decompressed input can only be read again from its start")
}

// stdinWriter lets isTerminal look at stdin.
func stdinWriter(r io.Reader) io.Writer {
	if f, ok := r.(*os.File); ok {
		return f
	}
	return nil
}

// peekReader lets openInput look at the first bytes without losing them.
type peekReader struct {
	r    io.Reader
	head []byte
}

func newPeekReader(r io.Reader) *peekReader { return &peekReader{r: r} }

func (p *peekReader) peek(n int) ([]byte, error) {
	for len(p.head) < n {
		buf := make([]byte, n-len(p.head))
		k, err := p.r.Read(buf)
		p.head = append(p.head, buf[:k]...)
		if err != nil {
			return p.head, err
		}
	}
	return p.head[:n], nil
}

func (p *peekReader) Read(b []byte) (int, error) {
	if len(p.head) > 0 {
		n := copy(b, p.head)
		p.head = p.head[n:]
		return n, nil
	}
	return p.r.Read(b)
}
