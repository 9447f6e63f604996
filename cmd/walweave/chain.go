package main

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/walweave/walweave/pgformat"
	"github.com/walweave/walweave/restore"
	"github.com/walweave/walweave/verify"
)

// chainInput opens the arguments of a chain (verify or restore with several streams) one
// by one with openInput: a file, or "-" for stdin (once), decompressed by its magic.
type chainInput struct {
	stdin     io.Reader
	stdinUsed bool
}

func (c *chainInput) open(arg string) (io.Reader, func(), error) {
	if arg == "-" {
		if c.stdinUsed {
			return nil, nil, errors.New(`"-" (stdin) may be given once`)
		}
		c.stdinUsed = true
	}
	in, err := openInput([]string{arg}, c.stdin)
	if err != nil {
		return nil, nil, err
	}
	return in, in.close, nil
}

// loadPriorManifest reads the manifest an incremental backup starts from: PRIOR is a
// backup_manifest file, or a prior walweave stream (plain, lz4, zstd or gzip) whose
// backup_manifest member is taken, byte for byte.
func loadPriorManifest(prior string) ([]byte, error) {
	if prior == "-" {
		return nil, errors.New("PRIOR cannot be stdin (the backup writes to stdout); give a file")
	}
	in, err := openInput([]string{prior}, nil)
	if err != nil {
		return nil, err
	}
	defer in.close()
	br := newPeekReader(in)
	head, _ := br.peek(1)
	if len(head) == 1 && head[0] == '{' {
		_, raw, err := pgformat.ReadManifest(br, pgformat.MaxManifestSize)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", prior, err)
		}
		return raw, nil
	}
	tr := tar.NewReader(br)
	var manifest []byte
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: not a backup_manifest nor a readable backup stream: %w", prior, err)
		}
		if h.Name == "backup_manifest" || h.Name == "./backup_manifest" {
			if h.Size > pgformat.MaxManifestSize {
				return nil, fmt.Errorf("%s: backup_manifest of %d bytes is too large", prior, h.Size)
			}
			if manifest, err = io.ReadAll(tr); err != nil {
				return nil, fmt.Errorf("%s: %w", prior, err)
			}
		}
	}
	if manifest == nil {
		return nil, fmt.Errorf("%s: the stream has no backup_manifest (an unfinished backup?)", prior)
	}
	return manifest, nil
}

// writeManifestOut writes the finished backup's manifest to path (path.tmp, fsynced, renamed).
func writeManifestOut(path string, manifest []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err = f.Write(manifest); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("--manifest-out: %w", err)
	}
	return syncDir(filepath.Dir(path))
}

// openChain opens every argument of a chain ("-" once, for stdin).
func openChain(args []string, stdin io.Reader) ([]verify.ChainStream, func(), error) {
	ci := &chainInput{stdin: stdin}
	var streams []verify.ChainStream
	var closers []func()
	closeAll := func() {
		for _, c := range closers {
			c()
		}
	}
	for _, a := range args {
		r, c, err := ci.open(a)
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("%s: %w", a, err)
		}
		name := a
		if a == "-" {
			name = "stdin"
		}
		streams = append(streams, verify.ChainStream{Name: name, R: r})
		closers = append(closers, c)
	}
	return streams, closeAll, nil
}

// verifyChain is walweave verify FULL INC1 INC2 ...: each stream checked, then the chain.
func verifyChain(ctx context.Context, args []string, opts verify.Options, quiet, allowUnverified bool, stdin io.Reader, stdout, stderr io.Writer) int {
	streams, closeAll, err := openChain(args, stdin)
	if err != nil {
		fmt.Fprintf(stderr, "walweave verify: %v\n", err)
		return exitUsage
	}
	defer closeAll()
	reps, err := verify.Chain(ctx, streams, opts)
	bad := 0
	var unverified []string // streams whose SHA checksums could not be computed (stdin)
	for i, rep := range reps {
		if rep == nil {
			continue
		}
		if !rep.OK() {
			bad++
		}
		text := rep.String()
		if rep.OK() && rep.ChecksumsNotVerified > 0 && !allowUnverified {
			unverified = append(unverified, streams[i].Name)
			text = "UNVERIFIED: " + strings.TrimPrefix(text, "OK: ")
		}
		if !rep.OK() || !quiet || len(unverified) > 0 && unverified[len(unverified)-1] == streams[i].Name {
			fmt.Fprintf(stdout, "%s: %s\n", streams[i].Name, text)
		}
	}
	if err != nil && !errors.Is(err, verify.ErrChain) {
		return fail(ctx, stderr, "verify", err)
	}
	if err != nil {
		fmt.Fprintf(stdout, "chain: FAILED: %v\n", err)
		fmt.Fprintf(stderr, "walweave: verify failed: the streams do not form a chain\n")
		return exitFailure
	}
	if bad > 0 {
		fmt.Fprintf(stderr, "walweave: verify failed: %d of %s %s problems (listed above)\n", bad, plural(len(reps), "stream"), map[bool]string{true: "has", false: "have"}[bad == 1])
		return exitFailure
	}
	if len(unverified) > 0 {
		fmt.Fprintf(stdout, "chain: UNVERIFIED: the chain links, but the SHA checksums of %s were not verified\n", strings.Join(unverified, ", "))
		fmt.Fprintf(stderr, "walweave verify: the SHA checksums of %s were NOT verified (sizes checked): give --checksum-algorithm, or the FILE rather than a pipe; --allow-unverified accepts this\n", strings.Join(unverified, ", "))
		return exitFailure
	}
	if !quiet {
		fmt.Fprintf(stdout, "chain: OK: %s, a full backup and %s of system %d\n", plural(len(reps), "backup"), plural(len(reps)-1, "incremental backup"), reps[0].SystemID)
	}
	return exitOK
}

// restoreChain is walweave restore -D DIR FULL INC1 INC2 ... (with progress on stderr for -P).
func restoreChain(ctx context.Context, args []string, opts restore.Options, progress bool, stdin io.Reader, stdout, stderr io.Writer) int {
	streams, closeAll, err := openChain(args, stdin)
	if err != nil {
		fmt.Fprintf(stderr, "walweave restore: %v\n", err)
		return exitUsage
	}
	defer closeAll()
	if progress {
		prog := newReadProgress(stderr, isTerminal(stderr), args)
		for i := range streams {
			streams[i].R = prog.reader(i, streams[i].R)
		}
		defer prog.finish()
	}
	ownerDesc := ""
	if opts.Owner == nil && os.Geteuid() == 0 {
		if o, from, ok := restore.DirOwner(opts.Dir); ok {
			opts.Owner, ownerDesc = &o, restore.DescribeOwner(o)+", the owner of "+from
		}
	}
	cr, err := restore.Chain(ctx, streams, opts)
	for i, rep := range cr.Reports {
		// On failure, the reports that list problems; not a stream merely left unread (the
		// chain stopped before its end).
		if rep != nil && (err == nil || len(rep.Problems) > 0) {
			fmt.Fprintf(stdout, "%s: %s\n", streams[i].Name, rep.String())
		}
	}
	if err != nil {
		if errors.Is(err, verify.ErrChain) && ctx.Err() == nil {
			kept := "nothing was kept"
			if opts.NoClean {
				kept = "what was written is kept (--no-clean) and is not a usable data directory"
			}
			fmt.Fprintf(stderr, "walweave: restore failed: %s; %s\n", strings.TrimPrefix(errorLine(err), "restore: "), kept)
			return exitFailure
		}
		return fail(ctx, stderr, "restore", err)
	}
	fmt.Fprintf(stdout, "chain restored: %s; %s applied (%s), %s replaced, %d removed; backup_manifest lists %s\n",
		plural(len(streams), "backup"), plural(cr.Patched, "INCREMENTAL file"), plural(int(cr.BlocksWritten), "block"), plural(cr.Replaced, "file"), cr.Removed, plural(cr.ManifestFiles, "file"))
	if ownerDesc != "" {
		fmt.Fprintf(stderr, "walweave restore: files owned by %s (--owner USER[:GROUP] to choose)\n", ownerDesc)
	}
	return exitOK
}
