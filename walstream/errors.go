package walstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/walweave/walweave/internal/pgerr"
	"github.com/walweave/walweave/internal/pgrepl"
	"github.com/walweave/walweave/pgformat"
)

// Errors the receiver's failures wrap, for callers that branch on what happened. They are
// decided by SQLSTATE and by what the receiver knows of the server (its timeline and WAL
// position), never by the server's message text, which follows its lc_messages.
var (
	// ErrWalsenderTerminated: the server ended the walsender (SQLSTATE 57P01:
	// pg_terminate_backend or a shutdown).
	ErrWalsenderTerminated = errors.New("the WAL sender was terminated")
	// ErrWALRemoved: the server no longer has WAL the stream needs (58P01 on the stream's
	// timeline).
	ErrWALRemoved = errors.New("the server no longer has the WAL the backup needs")
	// ErrSlotInvalidated: the replication slot cannot be used any more (55000), e.g.
	// invalidated because max_slot_wal_keep_size was exceeded.
	ErrSlotInvalidated = errors.New("the replication slot is invalidated")
	// ErrSlotMissing: the named replication slot does not exist.
	ErrSlotMissing = pgerr.ErrSlotMissing
	// ErrSlotInUse: another process streams from the replication slot (55006).
	ErrSlotInUse = errors.New("the replication slot is in use by another process")
	// ErrStartAhead: the start position is past the WAL the server has flushed: the WAL
	// connection reached another server than the data side.
	ErrStartAhead = errors.New("the start position is ahead of the server's WAL flush position")
	// ErrTimelineNotInHistory: the server's timeline history does not hold the requested
	// timeline (the server was restored or promoted meanwhile, or is another server).
	ErrTimelineNotInHistory = errors.New("the requested timeline is not in the server's history")
)

// startError explains a refused START_REPLICATION: the walsender is still in command mode,
// so IDENTIFY_SYSTEM tells whether the server is behind the start position or on an older
// timeline than the one asked for.
func (r *Receiver) startError(ctx context.Context, pos pgformat.LSN, tli uint32, err error) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return r.connError(err)
	}
	if !r.awaitIdle(ctx) {
		return r.serverError("start streaming", err)
	}
	if sys, ierr := pgrepl.IdentifySystem(ctx, r.conn); ierr == nil {
		switch {
		case tli > sys.Timeline:
			return fmt.Errorf("walstream: start streaming %s: timeline %d: %w (the server is on timeline %d): %w", r.at(), tli, ErrTimelineNotInHistory, sys.Timeline, err)
		case pgErr.Code == "XX000" && pos > sys.XLogPos:
			return fmt.Errorf("walstream: start streaming %s: %s: %w (the server's is %s); both connections must reach the same server: %w", r.at(), pos, ErrStartAhead, sys.XLogPos, err)
		}
	}
	return r.serverError("start streaming", err)
}

// awaitIdle reads up to the ReadyForQuery that follows an error in command mode (the
// walsender returns to it after an error at the start of streaming), within a few seconds.
func (r *Receiver) awaitIdle(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for {
		msg, err := r.conn.ReceiveMessage(ctx)
		if err != nil {
			return false
		}
		if _, ok := msg.(*pgproto3.ReadyForQuery); ok {
			return true
		}
	}
}

// serverError explains an error from the server (or the connection) during a streaming step.
func (r *Receiver) serverError(step string, err error) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return r.connError(err)
	}
	at := r.at()
	switch pgErr.Code {
	case "57P01": // admin_shutdown
		return fmt.Errorf("walstream: %s %s: %w (pg_terminate_backend or a server shutdown): %w", step, at, ErrWalsenderTerminated, err)
	case "58P01": // undefined_file: a WAL segment (or a history file) the server does not have
		if r.tempSlot {
			return fmt.Errorf("walstream: %s %s: %w (the temporary slot only protects WAL from when it was made, so this WAL was recycled before: a very old start position?): %w", step, at, ErrWALRemoved, err)
		}
		return fmt.Errorf("walstream: %s %s: %w: replication slot %q does not hold it back (its restart_lsn is past this point, or it was invalidated because max_slot_wal_keep_size was exceeded; see pg_replication_slots.wal_status): %w", step, at, ErrWALRemoved, r.slot, err)
	case "55000": // object_not_in_prerequisite_state
		return fmt.Errorf("walstream: %s %s: replication slot %q: %w (max_slot_wal_keep_size exceeded?): %w", step, at, r.slot, ErrSlotInvalidated, err)
	case "55006": // object_in_use
		return fmt.Errorf("walstream: %s %s: replication slot %q: %w: %w", step, at, r.slot, ErrSlotInUse, err)
	}
	return fmt.Errorf("walstream: %s %s: the server reported an error: %w", step, at, err)
}

// at says where the stream was: before streaming started, the receiver waits for the other
// connection's start checkpoint.
func (r *Receiver) at() string {
	if r.tli == 0 {
		return "before streaming started (while the base backup waited for the start checkpoint)"
	}
	return fmt.Sprintf("at %s on timeline %d", r.received, r.tli)
}

// connError explains a failure of the connection itself.
func (r *Receiver) connError(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return r.serverError("stream", err)
	}
	at := r.at()
	if pgrepl.TimedOut(err) {
		return fmt.Errorf("walstream: WAL streaming connection lost %s: %w (%v); check the network to the server (and a firewall or proxy between), then run the backup again", at, pgrepl.ErrConnTimedOut, err)
	}
	hint := "the walsender process ended (terminated, a server restart or crash"
	if r.senderTimeout > 0 {
		hint += fmt.Sprintf(", or wal_sender_timeout=%s expired", r.senderTimeout)
	}
	hint += ": see the server log)"
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return fmt.Errorf("walstream: the server closed the WAL streaming connection %s: %w; %s; run the backup again", at, err, hint)
	}
	return fmt.Errorf("walstream: WAL streaming connection lost %s: %w; either the network failed or %s; run the backup again", at, err, hint)
}
