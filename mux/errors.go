package mux

import (
	"context"
	"errors"
	"fmt"

	"github.com/walweave/walweave/internal/pgerr"
	"github.com/walweave/walweave/source"
)

// ChecksumError is returned by Backup when the server reported data checksum failures. The
// stream is left unfinished (no manifest, no trailer), as with every failed backup.
type ChecksumError = source.ChecksumError

// Side is the part of a backup an error comes from.
type Side string

// The sides of a backup.
const (
	SideBaseBackup Side = "base backup"  // the data source (connection A, or the file readers)
	SideWAL        Side = "WAL receiver" // the WAL stream (connection B)
	SideOutput     Side = "output"       // the io.Writer the stream goes to
)

// Error is a failed backup's error: which server, which side, in which phase and step. Every
// error Backup and the Session methods return after the configuration was accepted is an
// *Error, except a *ChecksumError and the cancellation cause of the caller's context; use
// errors.As to branch on its fields and errors.Is with the sentinel errors below.
type Error struct {
	// Server names the server: Config.Name, or the host and port of the connection string.
	Server string
	Side   Side
	// Phase is the phase the backup was in (PhaseConnecting ... PhaseWritingTail).
	Phase Phase
	// Step says what was being done, e.g. "start", "write pg_wal/000000010000000000000003".
	Step string
	Err  error
}

func (e *Error) Error() string {
	server := ""
	if e.Server != "" {
		server = e.Server + ": "
	}
	return fmt.Sprintf("mux: %s%s (%s): %v", server, e.Side, e.Step, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Sentinel errors for what an operator acts on; errors.Is matches them against an *Error (or
// any error chain holding the server's *pgconn.PgError), by SQLSTATE read for the kind of
// connection that failed, never by message text. The same sentinels hold whichever data
// source (BASE_BACKUP or Jobs) and side failed; Hint says what to do about each.
var (
	// ErrServerTooOld: the server is older than PostgreSQL 15 (checked by every source and
	// by the WAL receiver).
	ErrServerTooOld = pgerr.ErrServerTooOld
	// ErrAuthentication: the server refused the password or the pg_hba.conf rules refused the
	// connection (SQLSTATE 28P01, 28000).
	ErrAuthentication = pgerr.ErrAuthentication
	// ErrNoReplicationRole: the role lacks the REPLICATION attribute (42501 on a replication
	// connection).
	ErrNoReplicationRole = pgerr.ErrNoReplicationRole
	// ErrTooFewWALSenders: max_wal_senders is reached (53300 on a replication connection);
	// a backup needs two walsenders.
	ErrTooFewWALSenders = pgerr.ErrTooFewWALSenders
	// ErrTooFewSlots: every replication slot is in use (53400).
	ErrTooFewSlots = pgerr.ErrTooFewSlots
	// ErrSlotMissing: the named replication slot does not exist (42704, or found missing
	// before streaming).
	ErrSlotMissing = pgerr.ErrSlotMissing
	// ErrTooManyConnections: max_connections is reached on an ordinary connection (53300 on
	// a Jobs reader or its control session).
	ErrTooManyConnections = pgerr.ErrTooManyConnections
	// ErrPermissionDenied: the role lacks a privilege on an ordinary connection (42501 on a
	// Jobs connection: CONNECT on the database, EXECUTE on a backup function).
	ErrPermissionDenied = pgerr.ErrPermissionDenied
)

// Is matches the sentinel errors by the SQLSTATE of the server error in the chain.
func (e *Error) Is(target error) bool { return pgerr.Matches(e.Err, target) }

// Hint says what to do about the failure (the same advice the CLI prints), or "".
func (e *Error) Hint() string { return pgerr.Hint(e.Err) }

// Hint says what to do about err, any error Backup, a Session or package fleet returned
// (the advice of *Error.Hint, found anywhere in the chain), or "".
func Hint(err error) string { return pgerr.Hint(err) }

// fail wraps err with the server, side and phase, preferring the error that cancelled the run
// (the first failure on either side).
func (s *Session) fail(side Side, step string, err error) error {
	if cause := context.Cause(s.ctx); cause != nil && s.ctx.Err() != nil {
		if errors.Is(err, cause) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
			return s.wrapCause(cause)
		}
	}
	var already *Error
	if errors.As(err, &already) {
		return err
	}
	return &Error{Server: s.server, Side: side, Phase: s.curPhase, Step: step, Err: err}
}

// wrapCause returns the cancellation cause: the first failure as it was reported, or the
// caller's context error with the side and phase it hit (errors.Is(err, context.Canceled) and
// context.DeadlineExceeded still hold).
func (s *Session) wrapCause(cause error) error {
	var already *Error
	var ce *ChecksumError
	if errors.As(cause, &already) || errors.As(cause, &ce) {
		return cause
	}
	return &Error{Server: s.server, Side: s.sideAt(), Phase: s.curPhase, Step: "cancelled", Err: cause}
}

// sideAt names the side a deadline hit: the data side until the data is done, then the WAL.
func (s *Session) sideAt() Side {
	if s.dataDone {
		return SideWAL
	}
	return SideBaseBackup
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}
