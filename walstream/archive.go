package walstream

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/walweave/walweave/internal/pgrepl"
	"github.com/walweave/walweave/pgformat"
)

// ArchiveHooks make a Receiver serve a continuous WAL archiver (package walarchive) instead of a
// backup. With them:
//   - the flush position of every standby status update is Flushed(), what the archive stored
//     durably (a permanent slot's restart_lsn follows it), not the end of the WAL handed to the
//     ring;
//   - Received sees every byte as it arrives, in the buffer of the segment being filled;
//   - when the server's timeline ends, the old timeline's last, partial segment is not handed to
//     the ring zero-padded (it stays a partial segment, as pg_receivewal leaves it).
type ArchiveHooks struct {
	// Flushed returns the position up to which the WAL is durably stored. Required.
	Flushed func() pgformat.LSN
	// Received, when set, is called on the streaming goroutine after each XLogData message's
	// bytes were copied into the segment being filled: seg is that segment's buffer (valid until
	// the call returns), segStart its first LSN, seg[from:to] the new bytes. When a segment is
	// complete the call comes before the segment is handed to the ring. Returning report=true
	// sends a standby status update at once (the bytes were made durable: synchronous
	// replication waits for it); an error ends the stream.
	Received func(tli uint32, segStart pgformat.LSN, seg []byte, from, to int) (report bool, err error)
	// Sync, when set, is called before each periodic status update (every status interval)
	// and before the reply to a keepalive that asks for one: the archive makes what it
	// received durable, so that Flushed trails the received position by at most a status
	// interval, and reaches it when the server asks (a server shutting down waits until its
	// walsenders' clients have flushed everything, as pg_receivewal's comment on this says).
	// An archive that cannot returns invalidFlush: the reply to that keepalive then reports
	// no flush position (InvalidXLogRecPtr): the slot does not move, and the server counts
	// the write position as replicated. An error ends the stream.
	Sync func() (invalidFlush bool, err error)
	// Unbatched reads each message as it arrives (synchronous replication: a commit waits for
	// it). Otherwise the socket is read in batches of up to 256 KiB, at most 500 ms late.
	Unbatched bool
}

// ReportSoon asks the streaming goroutine to send a standby status update at once (the archive's
// Flushed position moved). It is safe to call from any goroutine at any time.
func (r *Receiver) ReportSoon() {
	r.statusDue.Store(true)
	r.kick()
}

// ReadSlot runs READ_REPLICATION_SLOT for Config.SlotName: its type ("" when it does not exist),
// restart_lsn and that position's timeline (both 0 when the slot holds no WAL). Call it before
// Stream.
func (r *Receiver) ReadSlot(ctx context.Context) (typ string, restart pgformat.LSN, tli uint32, err error) {
	typ, restart, tli, err = pgrepl.ReadReplicationSlot(ctx, r.conn, r.cfg.SlotName)
	if err != nil {
		return "", 0, 0, fmt.Errorf("walstream: %w", err)
	}
	return typ, restart, tli, nil
}

// CreateSlot creates Config.SlotName as a permanent physical slot that reserves WAL at once;
// an existing slot is left as it is (existed is true). Call it before Stream.
func (r *Receiver) CreateSlot(ctx context.Context) (existed bool, err error) {
	existed, err = pgrepl.CreatePhysicalSlot(ctx, r.conn, r.cfg.SlotName)
	if err != nil {
		return false, fmt.Errorf("walstream: %w", err)
	}
	return existed, nil
}

// ServerWALEnd returns the server's end of WAL as of the last message it sent (0 before
// streaming).
func (r *Receiver) ServerWALEnd() pgformat.LSN { return pgformat.LSN(r.st.serverEnd.Load()) }

// TimelineHistory runs TIMELINE_HISTORY for timeline tli (above 1): the history file's name
// ("00000002.history") and content, which pgformat.ParseHistory parses. A server that does not
// have that timeline's history file answers with an error wrapping ErrTimelineNotInHistory
// (SQLSTATE 58P01). Call it before Stream.
func (r *Receiver) TimelineHistory(ctx context.Context, tli uint32) (name string, content []byte, err error) {
	name, content, err = pgrepl.TimelineHistory(ctx, r.conn, tli)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "58P01" { // undefined_file: no such history file
		return "", nil, fmt.Errorf("walstream: timeline %d: %w: %w", tli, ErrTimelineNotInHistory, err)
	}
	if err != nil {
		return "", nil, fmt.Errorf("walstream: %w", err)
	}
	if want := pgformat.HistoryFileName(tli); name != want {
		return "", nil, fmt.Errorf("walstream: TIMELINE_HISTORY %d returned file %q, want %q", tli, name, want)
	}
	return name, content, nil
}
