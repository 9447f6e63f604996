package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/klauspost/compress/zstd"

	"github.com/walweave/walweave/internal/lz4frame"
	"github.com/walweave/walweave/pgformat"
)

// chainInput opens one argument of a chain (verify or restore with several streams, backup
// --incremental): a file, or "-" for stdin (once), decompressed by its magic (zstd, gzip,
// lz4 frames).
type chainInput struct {
	stdin     io.Reader
	stdinUsed bool
}

func (c *chainInput) open(arg string) (io.Reader, func(), error) {
	var src io.Reader
	closeFn := func() {}
	if arg == "-" {
		if c.stdinUsed {
			return nil, nil, errors.New(`"-" (stdin) may be given once`)
		}
		c.stdinUsed = true
		src = c.stdin
	} else {
		f, err := os.Open(arg)
		if err != nil {
			return nil, nil, err
		}
		if fi, err := f.Stat(); err == nil && fi.IsDir() {
			f.Close()
			return nil, nil, fmt.Errorf("%s is a directory; give a backup stream (a tar file)", arg)
		}
		src, closeFn = f, func() { f.Close() }
	}
	p := newPeekReader(src)
	magic, _ := p.peek(4)
	switch {
	case bytes.HasPrefix(magic, []byte("\x28\xb5\x2f\xfd")):
		zr, err := zstd.NewReader(p, zstd.WithDecoderConcurrency(1))
		if err != nil {
			closeFn()
			return nil, nil, err
		}
		return zr.IOReadCloser(), func() { zr.Close(); closeFn() }, nil
	case bytes.HasPrefix(magic, []byte("\x1f\x8b")):
		zr, err := gzip.NewReader(p)
		if err != nil {
			closeFn()
			return nil, nil, err
		}
		return zr, closeFn, nil
	case bytes.HasPrefix(magic, []byte("\x04\x22\x4d\x18")):
		return lz4frame.NewReader(p), closeFn, nil
	}
	return p, closeFn, nil
}

// loadPriorManifest reads the manifest an incremental backup starts from: PRIOR is a
// backup_manifest file, or a prior walweave stream (plain, lz4, zstd or gzip) whose
// backup_manifest member is taken, byte for byte.
func loadPriorManifest(prior string, stdin io.Reader) ([]byte, error) {
	if prior == "-" && stdin == nil {
		return nil, errors.New("PRIOR cannot be stdin here; give a file")
	}
	ci := &chainInput{stdin: stdin}
	r, closeFn, err := ci.open(prior)
	if err != nil {
		return nil, err
	}
	defer closeFn()
	br := newPeekReader(r)
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
