package pgrepl

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/walweave/walweave/pgformat"
)

// DefaultApplicationName is the application_name ParseConfig sets when the connection string
// (or PGAPPNAME) does not give one.
const DefaultApplicationName = "walweave"

// ParseConfig parses a connection string (keyword/value or URL; PG* environment variables and
// the password file are honoured, as by pgconn.ParseConfig) into a configuration for a physical
// replication connection: replication=true, application_name "walweave" unless one is given,
// and a context watcher that only sets a deadline on the socket when a context ends. A
// walsender must not receive cancel requests, and the WAL receiver relies on a read deadline
// leaving the connection usable.
func ParseConfig(connString string) (*pgconn.Config, error) {
	cfg, err := pgconn.ParseConfig(connString)
	if err != nil {
		return nil, fmt.Errorf("pgrepl: %w", err)
	}
	ConfigureReplication(cfg)
	return cfg, nil
}

// ConfigureReplication makes cfg a physical replication configuration as ParseConfig does.
func ConfigureReplication(cfg *pgconn.Config) {
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	cfg.RuntimeParams["replication"] = "true"
	if cfg.RuntimeParams["application_name"] == "" {
		cfg.RuntimeParams["application_name"] = DefaultApplicationName
	}
	cfg.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.DeadlineContextWatcherHandler{Conn: c.Conn()}
	}
}

// QuoteIdent quotes a name for a replication command ("my""slot").
func QuoteIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// simpleQuery runs a replication command and returns its single result.
func simpleQuery(ctx context.Context, conn *pgconn.PgConn, cmd string) (*pgconn.Result, error) {
	results, err := conn.Exec(ctx, cmd).ReadAll()
	if err != nil {
		return nil, err
	}
	if len(results) != 1 {
		return nil, fmt.Errorf("%d results, want 1", len(results))
	}
	return results[0], nil
}

// oneRow checks that res has exactly one row of at least n columns.
func oneRow(res *pgconn.Result, n int) ([][]byte, error) {
	if len(res.Rows) != 1 {
		return nil, fmt.Errorf("%d rows, want 1", len(res.Rows))
	}
	if len(res.Rows[0]) < n {
		return nil, fmt.Errorf("%d columns, want %d", len(res.Rows[0]), n)
	}
	return res.Rows[0], nil
}

// IdentifySystemResult is the row IDENTIFY_SYSTEM returns.
type IdentifySystemResult struct {
	SystemID string       // the cluster's system identifier (a decimal uint64)
	Timeline uint32       // the server's current timeline
	XLogPos  pgformat.LSN // the current WAL flush position
	DBName   string       // the database connected to; "" on a physical replication connection
}

// IdentifySystem runs IDENTIFY_SYSTEM (through pglogrepl).
func IdentifySystem(ctx context.Context, conn *pgconn.PgConn) (IdentifySystemResult, error) {
	sys, err := pglogrepl.IdentifySystem(ctx, conn)
	if err != nil {
		return IdentifySystemResult{}, fmt.Errorf("pgrepl: IDENTIFY_SYSTEM: %w", err)
	}
	if sys.Timeline < 1 {
		return IdentifySystemResult{}, fmt.Errorf("pgrepl: IDENTIFY_SYSTEM: invalid timeline %d", sys.Timeline)
	}
	return IdentifySystemResult{SystemID: sys.SystemID, Timeline: uint32(sys.Timeline), XLogPos: pgformat.LSN(sys.XLogPos), DBName: sys.DBName}, nil
}

// Show runs SHOW name and returns the setting's value as the server prints it ("16MB", "1min").
func Show(ctx context.Context, conn *pgconn.PgConn, name string) (string, error) {
	res, err := simpleQuery(ctx, conn, "SHOW "+QuoteIdent(name))
	if err != nil {
		return "", fmt.Errorf("pgrepl: SHOW %s: %w", name, err)
	}
	row, err := oneRow(res, 1)
	if err != nil {
		return "", fmt.Errorf("pgrepl: SHOW %s: unexpected result: %w", name, err)
	}
	return string(row[0]), nil
}

// CreateTemporaryPhysicalSlot runs CREATE_REPLICATION_SLOT "name" TEMPORARY PHYSICAL
// (RESERVE_WAL) and returns the slot's restart LSN (the redo point of the latest checkpoint on a
// primary). The slot lives as long as the connection. The server's answer has no restart LSN
// for a physical slot (its consistent_point is 0/0), so it is read back with
// READ_REPLICATION_SLOT.
func CreateTemporaryPhysicalSlot(ctx context.Context, conn *pgconn.PgConn, name string) (pgformat.LSN, error) {
	res, err := simpleQuery(ctx, conn, "CREATE_REPLICATION_SLOT "+QuoteIdent(name)+" TEMPORARY PHYSICAL (RESERVE_WAL)")
	if err != nil {
		return 0, fmt.Errorf("pgrepl: create temporary physical replication slot %q: %w", name, err)
	}
	if _, err := oneRow(res, 2); err != nil {
		return 0, fmt.Errorf("pgrepl: create temporary physical replication slot %q: unexpected result: %w", name, err)
	}
	typ, restart, _, err := ReadReplicationSlot(ctx, conn, name)
	if err != nil {
		return 0, err
	}
	if typ != "physical" {
		return 0, fmt.Errorf("pgrepl: create temporary physical replication slot %q: READ_REPLICATION_SLOT says type %q", name, typ)
	}
	return restart, nil
}

// ReadReplicationSlot runs READ_REPLICATION_SLOT name (PostgreSQL 15+). For a slot that does
// not exist it returns slotType "" and no error. restartLSN is 0 and restartTLI 0 when the slot
// has no restart LSN (created without reserving WAL, or invalidated).
func ReadReplicationSlot(ctx context.Context, conn *pgconn.PgConn, name string) (slotType string, restartLSN pgformat.LSN, restartTLI uint32, err error) {
	res, err := simpleQuery(ctx, conn, "READ_REPLICATION_SLOT "+QuoteIdent(name))
	if err != nil {
		return "", 0, 0, fmt.Errorf("pgrepl: READ_REPLICATION_SLOT %s: %w", name, err)
	}
	row, err := oneRow(res, 3)
	if err != nil {
		return "", 0, 0, fmt.Errorf("pgrepl: READ_REPLICATION_SLOT %s: unexpected result: %w", name, err)
	}
	slotType = string(row[0])
	if row[1] != nil {
		if restartLSN, err = pgformat.ParseLSN(string(row[1])); err != nil {
			return "", 0, 0, fmt.Errorf("pgrepl: READ_REPLICATION_SLOT %s: %w", name, err)
		}
	}
	if row[2] != nil {
		tli, err := strconv.ParseUint(string(row[2]), 10, 32)
		if err != nil {
			return "", 0, 0, fmt.Errorf("pgrepl: READ_REPLICATION_SLOT %s: invalid timeline %q", name, row[2])
		}
		restartTLI = uint32(tli)
	}
	return slotType, restartLSN, restartTLI, nil
}

// StartReplicationCommand returns the START_REPLICATION command: START_REPLICATION [SLOT "s"]
// PHYSICAL X/X TIMELINE n (the timeline is left out when tli is 0).
func StartReplicationCommand(slot string, start pgformat.LSN, tli uint32) string {
	var b strings.Builder
	b.WriteString("START_REPLICATION ")
	if slot != "" {
		b.WriteString("SLOT ")
		b.WriteString(QuoteIdent(slot))
		b.WriteByte(' ')
	}
	b.WriteString("PHYSICAL ")
	b.WriteString(start.String())
	if tli != 0 {
		b.WriteString(" TIMELINE ")
		b.WriteString(strconv.FormatUint(uint64(tli), 10))
	}
	return b.String()
}

// StartReplication sends START_REPLICATION [SLOT "slot"] PHYSICAL start TIMELINE tli and waits
// for the server's CopyBothResponse; from then on the connection streams (read CopyData with
// conn.ReceiveMessage). An ErrorResponse is returned as an error (a *pgconn.PgError is wrapped)
// after the connection is back to idle.
//
// Some errors only come after the CopyBothResponse, as the first message of the stream: a start
// ahead of the server's WAL flush position ("requested starting point ... is ahead of the WAL
// flush position of this server") and WAL that was already removed. When start is exactly where
// tli ended in the server's history there is nothing to stream: the server answers with the
// next timeline without entering COPY mode, and StartReplication returns a
// *TimelineEndedError.
func StartReplication(ctx context.Context, conn *pgconn.PgConn, slot string, start pgformat.LSN, tli uint32) error {
	fe := conn.Frontend()
	fe.Send(&pgproto3.Query{String: StartReplicationCommand(slot, start, tli)})
	if err := fe.Flush(); err != nil {
		return fmt.Errorf("pgrepl: start replication at %s on timeline %d: %w", start, tli, err)
	}
	var pgErr error
	var sw *TimelineSwitch
	for {
		msg, err := conn.ReceiveMessage(ctx)
		if err != nil {
			if pgErr != nil {
				err = pgErr
			}
			return fmt.Errorf("pgrepl: start replication at %s on timeline %d: %w", start, tli, err)
		}
		switch m := msg.(type) {
		case *pgproto3.CopyBothResponse:
			return nil
		case *pgproto3.ErrorResponse:
			pgErr = pgconn.ErrorResponseToPgError(m)
			if strings.EqualFold(m.Severity, "FATAL") || strings.EqualFold(m.Severity, "PANIC") {
				return fmt.Errorf("pgrepl: start replication at %s on timeline %d: %w", start, tli, pgErr)
			}
		case *pgproto3.DataRow:
			if sw, err = parseNextTimeline(m); err != nil {
				return fmt.Errorf("pgrepl: start replication at %s on timeline %d: %w", start, tli, err)
			}
		case *pgproto3.ReadyForQuery:
			switch {
			case pgErr != nil:
			case sw != nil:
				return &TimelineEndedError{Timeline: tli, Start: start, Next: *sw}
			default:
				pgErr = errors.New("the server did not start streaming")
			}
			return fmt.Errorf("pgrepl: start replication at %s on timeline %d: %w", start, tli, pgErr)
		default:
			// RowDescription, CommandComplete, notices.
		}
	}
}

// TimelineEndedError is returned by StartReplication when the requested start is where the
// requested timeline ended in the server's history: there is nothing to stream on it, and
// streaming goes on from Next.StartPos on Next.NextTLI.
type TimelineEndedError struct {
	Timeline uint32       // the timeline asked for
	Start    pgformat.LSN // the start asked for
	Next     TimelineSwitch
}

// Error says where the timeline ended and what comes next.
func (e *TimelineEndedError) Error() string {
	return fmt.Sprintf("pgrepl: start replication at %s on timeline %d: timeline %d ended there; the next timeline is %d from %s",
		e.Start, e.Timeline, e.Timeline, e.Next.NextTLI, e.Next.StartPos)
}

// TimelineHistory runs TIMELINE_HISTORY tli and returns the history file's name (e.g.
// "00000002.history") and contents. Timeline 1 has no history file.
func TimelineHistory(ctx context.Context, conn *pgconn.PgConn, tli uint32) (fileName string, content []byte, err error) {
	if tli > math.MaxInt32 {
		return "", nil, fmt.Errorf("pgrepl: TIMELINE_HISTORY %d: timeline out of range", tli)
	}
	h, err := pglogrepl.TimelineHistory(ctx, conn, int32(tli))
	if err != nil {
		return "", nil, fmt.Errorf("pgrepl: TIMELINE_HISTORY %d: %w", tli, err)
	}
	return h.FileName, h.Content, nil
}

// TimelineSwitch is the result set the server sends when it ends streaming because the
// requested timeline ended in its history: the next timeline and the LSN where it starts.
type TimelineSwitch struct {
	NextTLI  uint32
	StartPos pgformat.LSN
}

// ReadStreamEnd reads what follows the end of the COPY of START_REPLICATION once both sides sent
// CopyDone: any CopyData still in flight (skipped), an optional result set naming the next
// timeline (returned; nil if none), CommandComplete(s) and ReadyForQuery. An ErrorResponse is
// returned as an error once ReadyForQuery arrives (or at once for FATAL).
func ReadStreamEnd(ctx context.Context, conn *pgconn.PgConn) (*TimelineSwitch, error) {
	var sw *TimelineSwitch
	var pgErr error
	for {
		msg, err := conn.ReceiveMessage(ctx)
		if err != nil {
			if pgErr != nil {
				err = pgErr
			}
			return nil, fmt.Errorf("pgrepl: end of streaming: %w", err)
		}
		switch m := msg.(type) {
		case *pgproto3.DataRow:
			if sw, err = parseNextTimeline(m); err != nil {
				return nil, fmt.Errorf("pgrepl: end of streaming: %w", err)
			}
		case *pgproto3.ErrorResponse:
			pgErr = pgconn.ErrorResponseToPgError(m)
			if strings.EqualFold(m.Severity, "FATAL") || strings.EqualFold(m.Severity, "PANIC") {
				return nil, fmt.Errorf("pgrepl: end of streaming: %w", pgErr)
			}
		case *pgproto3.ReadyForQuery:
			if pgErr != nil {
				return nil, fmt.Errorf("pgrepl: end of streaming: %w", pgErr)
			}
			return sw, nil
		default:
			// CopyData, CopyDone, RowDescription, CommandComplete, notices.
		}
	}
}

// parseNextTimeline parses the (next_tli, next_tli_startpos) row.
func parseNextTimeline(m *pgproto3.DataRow) (*TimelineSwitch, error) {
	if len(m.Values) < 2 {
		return nil, fmt.Errorf("next timeline row has %d columns, want 2", len(m.Values))
	}
	tli, err := strconv.ParseUint(string(m.Values[0]), 10, 32)
	if err != nil {
		return nil, fmt.Errorf("invalid next timeline %q", m.Values[0])
	}
	pos, err := pgformat.ParseLSN(string(m.Values[1]))
	if err != nil {
		return nil, fmt.Errorf("next timeline start: %w", err)
	}
	return &TimelineSwitch{NextTLI: uint32(tli), StartPos: pos}, nil
}
