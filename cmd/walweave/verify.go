package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/walweave/walweave/internal/lz4frame"
	"github.com/walweave/walweave/verify"
)

const verifyUsage = `Usage: walweave verify [flags] [FILE|-]
       walweave verify [flags] FULL INC1 INC2 ...   (a chain: each stream, then the links)

Reads a walweave stream once (stdin when FILE is - or missing), in bounded memory, and
checks it without extracting it: the tar, the manifest and its checksum, every file's size
and checksum, the WAL from the start to the end LSN (page headers and records), timeline
history files. lz4 frames (walweave backup --compress lz4) are decoded on the fly.

  aws s3 cp s3://bucket/base.tar.zst - | zstd -d | walweave verify

Exit status: 0 when the stream is complete and correct, 1 with every problem listed.

Flags:
`

func runVerify(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("walweave verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(fs.Output(), verifyUsage); fs.PrintDefaults() }
	var opts verify.Options
	var quiet, verbose bool
	fs.StringVar(&opts.Algorithm, "checksum-algorithm", "", "also compute this SHA algorithm while reading (when the manifest uses SHA checksums)")
	fs.BoolVar(&opts.SkipChecksums, "no-checksums", false, "skip file checksums (sizes are still checked)")
	fs.BoolVar(&opts.SkipWAL, "no-wal", false, "skip the WAL checks")
	boolFlag(fs, &quiet, "q", "quiet", "print nothing when the stream is good")
	boolFlag(fs, &verbose, "v", "verbose", "log what happens on stderr")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	opts.Logger = debugLogger(stderr, verbose)
	if fs.NArg() > 1 {
		return verifyChain(ctx, fs.Args(), opts, quiet, stdin, stdout, stderr)
	}
	in, closeIn, code := openStreamArg("verify", fs, stdin, stderr)
	if closeIn == nil {
		return code
	}
	defer closeIn()
	rep, err := verify.Stream(ctx, in, opts)
	if err != nil {
		return fail(ctx, stderr, "verify", err)
	}
	return reportOutcome(rep, "verify", quiet, stdout, stderr)
}

// reportOutcome prints a verify report (the summary on stdout, unless quiet and good; a
// one-line reason on stderr when there are problems) and returns the exit status.
func reportOutcome(rep *verify.Report, what string, quiet bool, stdout, stderr io.Writer) int {
	if rep.OK() {
		if !quiet {
			fmt.Fprintln(stdout, rep.String())
		}
		return exitOK
	}
	fmt.Fprintln(stdout, rep.String())
	fmt.Fprintf(stderr, "walweave: %s failed: %d problems (listed above)\n", what, len(rep.Problems)+rep.ProblemsOmitted)
	return exitFailure
}

// debugLogger returns a debug-level logger on stderr for -v, or nil (log nothing).
func debugLogger(stderr io.Writer, verbose bool) *slog.Logger {
	if !verbose {
		return nil
	}
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// openStreamArg is openStream for command cmd: on failure it prints the reason and returns a
// nil close function with the usage exit status.
func openStreamArg(cmd string, fs *flag.FlagSet, stdin io.Reader, stderr io.Writer) (io.Reader, func(), int) {
	in, closeIn, err := openStream(fs, stdin)
	if err != nil {
		fmt.Fprintf(stderr, "walweave %s: %v\n", cmd, err)
		return nil, nil, exitUsage
	}
	return in, closeIn, exitOK
}

// openStream opens the single FILE|- argument, decoding lz4 frames when the input starts
// with the lz4 frame magic.
func openStream(fs *flag.FlagSet, stdin io.Reader) (io.Reader, func(), error) {
	if fs.NArg() > 1 {
		return nil, nil, fmt.Errorf("one FILE at most, got %q", strings.Join(fs.Args(), " "))
	}
	var r io.Reader = stdin
	closeFn := func() {}
	if fs.NArg() == 1 && fs.Arg(0) != "-" {
		f, err := os.Open(fs.Arg(0))
		if err != nil {
			return nil, nil, err
		}
		r, closeFn = f, func() { f.Close() }
	}
	br := newPeekReader(r)
	if magic, _ := br.peek(4); len(magic) == 4 && string(magic) == "\x04\x22\x4d\x18" {
		return lz4frame.NewReader(br), closeFn, nil
	}
	return br, closeFn, nil
}

// peekReader lets openStream look at the first bytes without losing them.
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
