package walstream

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/walweave/walweave/pgrepl"
)

// serverError explains an error from the server (or the connection) during a streaming step.
func (r *Receiver) serverError(step string, err error) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return r.connError(err)
	}
	msg := pgErr.Message
	at := r.at()
	switch {
	case pgErr.Code == "57P01" || strings.Contains(msg, "terminating connection due to administrator command"):
		return fmt.Errorf("walstream: the WAL sender was terminated %s (pg_terminate_backend or a server shutdown): %w; run the backup again", at, err)
	case strings.Contains(msg, "has already been removed"):
		if r.tempSlot {
			return fmt.Errorf("walstream: %s %s: the server no longer has the WAL the backup needs: %w; the temporary slot only protects WAL from when it was made, so this WAL was recycled before (a very old start position?)", step, at, err)
		}
		return fmt.Errorf("walstream: %s %s: the server no longer has the WAL the backup needs: %w; replication slot %q does not hold it back: its restart_lsn is past this point or the slot was invalidated because max_slot_wal_keep_size was exceeded (see pg_replication_slots.wal_status); use a fresh slot or leave --slot out to use a temporary one", step, at, err, r.slot)
	case strings.Contains(msg, "invalidated") || strings.Contains(msg, "can no longer"):
		return fmt.Errorf("walstream: %s %s: replication slot %q was invalidated (max_slot_wal_keep_size exceeded?): %w; drop and recreate it, or leave --slot out", step, at, r.slot, err)
	case strings.Contains(msg, "is ahead of the WAL flush position"):
		return fmt.Errorf("walstream: %s %s: the start position is ahead of the WAL flush position of the server the WAL connection reached: %w; both connections must reach the same server", step, at, err)
	case pgErr.Code == "55006" || strings.Contains(msg, "is active for PID"):
		return fmt.Errorf("walstream: %s %s: replication slot %q is in use by another process: %w; stop that client or use another slot", step, at, r.slot, err)
	case strings.Contains(msg, "is not in this server's history"):
		return fmt.Errorf("walstream: %s %s: %w; the server's timeline history does not contain the backup's start (was it restored or promoted meanwhile?)", step, at, err)
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
