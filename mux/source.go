package mux

import (
	"context"
	"io"

	"github.com/walweave/walweave/pgrepl"
)

// Source is the data side of a backup: the server's tar archives plus the backup's start and
// end LSN. The BASE_BACKUP receiver is the first implementation; another one (several
// connections fetching files in parallel) can be added without touching the WAL side or the
// writer.
//
// Calls come in this order: Begin, NextArchive until io.EOF (reading each archive's Data to
// its end before the next call), End, Close. Close may come at any time and must unblock
// any call in progress.
type Source interface {
	// Begin starts the backup. When it returns, the backup's start LSN is known and WAL
	// from its segment start onwards is needed.
	Begin(ctx context.Context) (BackupStart, error)
	// NextArchive returns the next server archive (each tablespace, then the main data
	// directory) or io.EOF when there are no more.
	NextArchive(ctx context.Context) (Archive, error)
	// End finishes the backup after the last archive: the end LSN, the manifest, and any
	// checksum failures the server reported (as *ChecksumError).
	End(ctx context.Context) (BackupEnd, error)
	// Close releases the connection; a backup that did not End is aborted on the server.
	Close() error
}

// Tablespace is one tablespace of the backup (not the main data directory).
type Tablespace struct {
	OID      string
	Location string // absolute path on the server; "pg_tblspc/<oid>" for in-place ones (16+)
	Size     int64  // estimated bytes, 0 when unknown
}

// BackupStart is what Begin returns.
type BackupStart struct {
	StartLSN    pgrepl.LSN
	Timeline    uint32
	Tablespaces []Tablespace
	TotalSize   int64 // estimated bytes of all archives, 0 when unknown
}

// Archive is one server tar archive.
type Archive struct {
	Name       string      // e.g. "16384.tar" or "base.tar"
	Tablespace *Tablespace // nil for the main data directory
	Data       io.Reader   // the archive's bytes, ending with its 1024-byte trailer
	compressed bool        // the server compresses it (Data decompresses)
}

// BackupEnd is what End returns.
type BackupEnd struct {
	EndLSN   pgrepl.LSN
	Timeline uint32
	Manifest []byte
	// ArchiveBytes is the size of the archives as received (compressed or not).
	ArchiveBytes int64
	// Checksum is non-nil when the server reported data checksum failures; the stream
	// must not be finished then.
	Checksum *ChecksumError
}
