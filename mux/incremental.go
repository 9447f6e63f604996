package mux

import (
	"archive/tar"
	"bufio"
	"errors"
	"fmt"
	"io"

	"github.com/walweave/walweave/internal/source/basebackup"
	"github.com/walweave/walweave/pgformat"
)

// Errors of an incremental backup (Config.IncrementalFrom), for errors.Is against the error
// Backup returns; errors.As with *IncrementalError gives the server's message and the advice.
var (
	ErrIncrementalUnsupported = basebackup.ErrIncrementalUnsupported // server older than 17
	ErrSummarizeWALOff        = basebackup.ErrSummarizeWALOff        // summarize_wal = off
	ErrSummariesMissing       = basebackup.ErrSummariesMissing       // WAL summaries missing or incomplete
	ErrPriorOtherSystem       = basebackup.ErrPriorOtherSystem       // prior backup of another cluster
	ErrPriorTimeline          = basebackup.ErrPriorTimeline          // prior backup off this timeline history
	ErrPriorManifest          = basebackup.ErrPriorManifest          // prior manifest unusable
)

// IncrementalError is an incremental backup refused: the kind (one of the errors above), the
// cause (the server's error when the server refused) and what to do.
type IncrementalError = basebackup.IncrementalError

// PriorManifest reads what IncrementalFrom takes from a prior backup: r is either that
// backup's walweave stream (uncompressed: wrap a compressed one in its decompressor first),
// whose backup_manifest member is returned byte for byte, or a backup_manifest file itself.
// A stream without a backup_manifest member (an unfinished backup) is an error.
func PriorManifest(r io.Reader) ([]byte, error) {
	br := bufio.NewReader(r)
	if head, _ := br.Peek(1); len(head) == 1 && head[0] == '{' {
		_, raw, err := pgformat.ReadManifest(br, pgformat.MaxManifestSize)
		if err != nil {
			return nil, fmt.Errorf("mux: prior manifest: %w", err)
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
			return nil, fmt.Errorf("mux: prior manifest: not a backup_manifest nor a readable backup stream: %w", err)
		}
		if h.Name == "backup_manifest" || h.Name == "./backup_manifest" {
			if h.Size > pgformat.MaxManifestSize {
				return nil, fmt.Errorf("mux: prior manifest: backup_manifest of %d bytes is too large", h.Size)
			}
			if manifest, err = io.ReadAll(tr); err != nil {
				return nil, fmt.Errorf("mux: prior manifest: %w", err)
			}
		}
	}
	if manifest == nil {
		return nil, errors.New("mux: prior manifest: the stream has no backup_manifest (an unfinished backup?)")
	}
	return manifest, nil
}
