package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"

	"github.com/walweave/walweave/verify"
)

const verifyLong = `Reads a walweave stream (stdin when FILE is - or missing), in bounded memory, and checks it
without extracting it: the tar, the manifest and its checksum, every file's size and
checksum, the WAL from the start to the end LSN (page headers and records), timeline
history files. zstd, gzip and lz4 input is recognized and decompressed on the fly. Several
streams (FULL INC1 INC2 ...) are an incremental chain: each stream, then the links.

With SHA manifest checksums (backup --manifest-checksums SHA256), a FILE is read twice
(the manifest comes last, so the checksums are computed on a second read); from a pipe the
checksums can only be computed with --checksum-algorithm SHA256 given up front, otherwise
the file checksums are not verified and verify exits 1 unless --allow-unverified.

Exit status: 0 when the stream is complete and correct (and every checksum verified), 1
with every problem listed, 2 on a usage error.`

const verifyExample = `  aws s3 cp s3://bucket/base.tar.zst - | walweave verify
  walweave verify base.tar.zst
  walweave verify full.tar inc1.tar inc2.tar.zst`

// verifyFlags are walweave verify's flags.
type verifyFlags struct {
	opts                            verify.Options
	quiet, verbose, allowUnverified bool
}

func newVerifyCmd(a *app) *cobra.Command {
	var f verifyFlags
	cmd := &cobra.Command{
		Use:     "verify [flags] [FILE|-] | FULL INC1 INC2 ...",
		Short:   "check a stream (or a chain) without extracting it",
		Long:    verifyLong,
		Example: verifyExample,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.exit(runVerify(a.ctx, &f, args, a.stdin, a.stdout, a.stderr))
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&f.opts.Algorithm, "checksum-algorithm", "", "also compute this SHA `ALGORITHM` while reading (needed to verify SHA manifest checksums from a pipe)")
	fs.BoolVar(&f.opts.SkipChecksums, "no-checksums", false, "skip file checksums (sizes are still checked)")
	fs.BoolVar(&f.opts.SkipWAL, "no-wal", false, "skip the WAL checks")
	fs.BoolVar(&f.allowUnverified, "allow-unverified", false, "exit 0 even when SHA checksums could not be verified (a pipe without --checksum-algorithm); sizes are still checked")
	fs.BoolVarP(&f.quiet, "quiet", "q", false, "print nothing when the stream is good")
	fs.BoolVarP(&f.verbose, "verbose", "v", false, "log what happens on stderr")
	return cmd
}

func runVerify(ctx context.Context, f *verifyFlags, pos []string, stdin io.Reader, stdout, stderr io.Writer) int {
	opts, quiet, allowUnverified := f.opts, f.quiet, f.allowUnverified
	opts.Logger = debugLogger(stderr, f.verbose)
	if len(pos) > 1 {
		return verifyChain(ctx, pos, opts, quiet, allowUnverified, stdin, stdout, stderr)
	}
	in, err := openInput(pos, stdin)
	if err != nil {
		fmt.Fprintf(stderr, "walweave verify: %v\n", err)
		return exitUsage
	}
	defer in.close()
	if in.format != "" && opts.Logger != nil {
		opts.Logger.Info("decompressing the input", "format", in.format, "input", in.name)
	}
	rep, err := verify.Stream(ctx, in.Reader, opts) // in.Reader: seekable from a file
	if err != nil {
		return fail(ctx, stderr, "verify", err)
	}
	if rep.OK() && rep.ChecksumsNotVerified > 0 {
		return reportUnverified(rep, opts, in.seekable, quiet, allowUnverified, stdout, stderr)
	}
	return reportOutcome(rep, "verify", quiet, stdout, stderr)
}

// reportUnverified reports a good stream whose SHA file checksums could not be computed (read
// from a pipe without --checksum-algorithm): not "OK", but what was checked and what was not;
// exit 1, or 0 with --allow-unverified.
func reportUnverified(rep *verify.Report, opts verify.Options, seekable, quiet, allowUnverified bool, stdout, stderr io.Writer) int {
	checked := "sizes"
	if !opts.SkipWAL {
		checked = "sizes and WAL CRCs"
	}
	how := "give --checksum-algorithm " + rep.ChecksumAlgorithm + ", or the FILE rather than a pipe"
	if seekable {
		how = "give --checksum-algorithm " + rep.ChecksumAlgorithm
	}
	words := fmt.Sprintf("%s checked, %s checksums of %s not verified (%s)", checked, rep.ChecksumAlgorithm, plural(rep.ChecksumsNotVerified, "file"), how)
	status := "UNVERIFIED"
	if allowUnverified {
		status = "OK (sizes only, --allow-unverified)"
	}
	if !quiet || !allowUnverified {
		lines := strings.Split(strings.TrimSuffix(rep.String(), "\n"), "\n")
		fmt.Fprintf(stdout, "%s: %s\n%s\n", status, strings.TrimPrefix(lines[0], "OK: "), words)
		for _, l := range lines[1:] {
			if !strings.HasPrefix(l, "WARNING: the checksums of") {
				fmt.Fprintln(stdout, l)
			}
		}
	}
	if allowUnverified {
		return exitOK
	}
	fmt.Fprintf(stderr, "walweave verify: the %s checksums of %s were NOT verified, %s checked: %s; --allow-unverified accepts this\n",
		rep.ChecksumAlgorithm, plural(rep.ChecksumsNotVerified, "file"), checked, how)
	return exitFailure
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
	fmt.Fprintf(stderr, "walweave: %s failed: %s (listed above)\n", what, plural(len(rep.Problems)+rep.ProblemsOmitted, "problem"))
	return exitFailure
}

// debugLogger returns a debug-level logger on stderr for -v, or nil (log nothing).
func debugLogger(stderr io.Writer, verbose bool) *slog.Logger {
	if !verbose {
		return nil
	}
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
