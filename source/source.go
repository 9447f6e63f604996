// Package source defines the data side of a walweave backup: a Source hands out the backup's
// files one tar member at a time, with the positions the WAL side and the writer need (start
// LSN and timeline, tablespaces, system identifier, end LSN, manifest).
//
// A Source knows nothing of the WAL, the weaving or the output stream; the orchestrator (package
// mux) puts those together. Implementations: package source/basebackup (BASE_BACKUP on one
// replication connection) and, for tests, package source/sourcetest (members from memory).
//
// Calls come in this order: Open, Start, Next until io.EOF (reading each member's Data to its
// end, or not at all, before the next call), End, Close. Close may come at any time, from any
// goroutine, and must unblock a call in progress; a backup that did not End is aborted on the
// server.
package source

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/walweave/walweave/pgformat"
	"github.com/walweave/walweave/tarw"
)

// Source is the data side of a backup, member by member.
type Source interface {
	// Open connects and describes the server; no backup runs yet. The orchestrator prepares
	// the WAL side (its replication slot) between Open and Start, so that no WAL the backup
	// needs can be recycled.
	Open(ctx context.Context) (Info, error)
	// Start starts the backup on the server (the start checkpoint runs inside it). progress,
	// when not nil, is called with the data bytes the server has sent so far, from the
	// goroutine calling Next.
	Start(ctx context.Context, progress func(bytesDone int64)) (Start, error)
	// Next returns the next member, or io.EOF after the last one. Members of every
	// tablespace come before the main directory's when the source sends them so.
	Next(ctx context.Context) (Member, error)
	// End finishes the backup after the last member: the end position and the manifest. A
	// non-nil End.Checksum means the server found data checksum failures.
	End(ctx context.Context) (End, error)
	// Close releases the connections; a running backup is aborted on the server.
	Close() error
}

// Info describes the server a Source reaches, as Open finds it.
type Info struct {
	SystemID      string // the cluster's system identifier (IDENTIFY_SYSTEM)
	ServerVersion int    // server_version_num, e.g. 170004
	// GroupAccess is true when the data directory allows group access (data_directory_mode
	// 0750): files are then 0640 and directories 0750 instead of 0600 and 0700.
	GroupAccess bool
}

// Tablespace is one tablespace of the backup (not the main data directory).
type Tablespace struct {
	OID      string
	Location string // absolute path on the server; "pg_tblspc/<oid>" for in-place ones (16+)
	Size     int64  // estimated bytes, 0 when unknown
}

// Start is what Start returns.
type Start struct {
	StartLSN    pgformat.LSN
	Timeline    uint32
	Tablespaces []Tablespace
	TotalSize   int64 // estimated bytes of all data, 0 when unknown
}

// Member is one file, directory or link of the backup.
type Member struct {
	// Header names the member relative to the root it belongs to: the main data directory, or
	// the tablespace's directory when Tablespace is not nil.
	Header *tarw.Member
	// Tablespace is the tablespace the member belongs to, nil for the main data directory.
	Tablespace *Tablespace
	// Data holds Header.Size bytes for a regular file; it is valid until the next call.
	Data io.Reader
}

// End is what End returns.
type End struct {
	EndLSN   pgformat.LSN
	Timeline uint32
	Manifest []byte
	// WireBytes is the size of the data as it came over the network (compressed with server
	// compression, else the archives' bytes).
	WireBytes int64
	// Checksum is non-nil when the server reported data checksum failures; the stream must not
	// be finished then.
	Checksum *ChecksumError
}

// Checkpoint selects how the server's backup-start checkpoint runs (BASE_BACKUP's CHECKPOINT
// option, pg_backup_start's fast argument).
type Checkpoint string

// The checkpoint modes.
const (
	CheckpointSpread Checkpoint = "spread" // the default: spread over checkpoint_completion_target
	CheckpointFast   Checkpoint = "fast"   // as fast as possible (more I/O at once)
)

// ErrCheckpointMode is returned (wrapped) for a Checkpoint that is none of the modes.
var ErrCheckpointMode = errors.New("checkpoint mode is not fast or spread")

// Normalize returns c with "" read as CheckpointSpread, or an error for an unknown mode.
func (c Checkpoint) Normalize() (Checkpoint, error) {
	switch c {
	case "":
		return CheckpointSpread, nil
	case CheckpointFast, CheckpointSpread:
		return c, nil
	}
	return "", fmt.Errorf("%w: %q", ErrCheckpointMode, string(c))
}
