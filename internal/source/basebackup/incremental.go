package basebackup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/walweave/walweave/internal/pgrepl"
	"github.com/walweave/walweave/pgformat"
)

// MinIncrementalVersion is the oldest server that takes incremental backups (UPLOAD_MANIFEST
// and BASE_BACKUP's INCREMENTAL option came in PostgreSQL 17).
const MinIncrementalVersion = 170000

// Errors of an incremental backup, for errors.Is. Each comes wrapped in an *IncrementalError
// that carries the server's own message (when the server refused) and what to do.
var (
	// ErrIncrementalUnsupported: the server is older than PostgreSQL 17.
	ErrIncrementalUnsupported = errors.New("incremental backups need PostgreSQL 17 or newer")
	// ErrSummarizeWALOff: summarize_wal is off on the server.
	ErrSummarizeWALOff = errors.New("WAL summarization is off (summarize_wal)")
	// ErrSummariesMissing: the server lacks WAL summaries from the prior backup's start to now.
	ErrSummariesMissing = errors.New("WAL summaries since the prior backup are missing")
	// ErrPriorOtherSystem: the prior backup is of another cluster (system identifier).
	ErrPriorOtherSystem = errors.New("the prior backup is of another cluster")
	// ErrPriorTimeline: the prior backup's WAL ranges do not fit this server's timeline
	// history (a backup of another timeline, or taken after this backup's start).
	ErrPriorTimeline = errors.New("the prior backup does not fit this server's timeline history")
	// ErrPriorManifest: the prior manifest is unusable (version 1, damaged, not a manifest).
	ErrPriorManifest = errors.New("the prior backup manifest is unusable")
)

// IncrementalError is an incremental backup refused, by walweave's checks of the prior
// manifest or by the server. Kind is one of the Err* values above (errors.Is matches it),
// Err the cause (the server's *pgconn.PgError when the server refused) and Advice what to do.
type IncrementalError struct {
	Kind   error
	Err    error
	Advice string
}

func (e *IncrementalError) Error() string {
	if e.Advice == "" {
		return fmt.Sprintf("incremental backup: %v", e.Err)
	}
	return fmt.Sprintf("incremental backup: %v; %s", e.Err, e.Advice)
}

func (e *IncrementalError) Unwrap() []error { return []error{e.Kind, e.Err} }

const adviceFull = "take a full backup (walweave backup without --incremental) and start a new chain from it"

// checkPriorManifest checks the prior manifest before it is uploaded, so that the common
// mistakes get walweave's message rather than the server's: the server checks the same.
func checkPriorManifest(prior []byte, systemID string) error {
	m, err := pgformat.ParseManifest(prior)
	if err != nil {
		return &IncrementalError{Kind: ErrPriorManifest, Err: fmt.Errorf("the prior backup_manifest: %w", err),
			Advice: "pass the backup_manifest of the prior backup unchanged (--manifest-out writes it beside the stream), or the prior stream itself"}
	}
	if m.Version < 2 {
		return &IncrementalError{Kind: ErrPriorManifest, Err: errors.New("the prior backup_manifest is version 1 (PostgreSQL 15 or 16): it cannot start an incremental backup"),
			Advice: adviceFull}
	}
	if sid := strconv.FormatUint(m.SystemIdentifier, 10); sid != systemID {
		return &IncrementalError{Kind: ErrPriorOtherSystem,
			Err:    fmt.Errorf("the prior backup is of the cluster with system identifier %s, this server's is %s", sid, systemID),
			Advice: "pass a prior backup of this server, or " + adviceFull}
	}
	return nil
}

// prepareIncremental runs before BASE_BACKUP on connection A: it checks the server can take
// an incremental backup and uploads the prior manifest, byte for byte, over CopyIn
// (UPLOAD_MANIFEST); the server keeps it for the session.
func (b *Source) prepareIncremental(ctx context.Context, conn *pgconn.PgConn, version int, systemID string) error {
	prior := b.cfg.IncrementalFrom
	if version < MinIncrementalVersion {
		return &IncrementalError{Kind: ErrIncrementalUnsupported,
			Err:    fmt.Errorf("the server is PostgreSQL %s", conn.ParameterStatus("server_version")),
			Advice: "incremental backups need PostgreSQL 17 or newer; take full backups of this server"}
	}
	if err := checkPriorManifest(prior, systemID); err != nil {
		return err
	}
	on, err := pgrepl.Show(ctx, conn, "summarize_wal")
	if err != nil {
		return err
	}
	if on != "on" {
		return &IncrementalError{Kind: ErrSummarizeWALOff, Err: errors.New("summarize_wal is off on the server"),
			Advice: "set summarize_wal = on (ALTER SYSTEM SET summarize_wal = on; SELECT pg_reload_conf()), then take a full backup: incremental backups need WAL summaries from the prior backup's start on"}
	}
	if err := checkPriorTimeline(ctx, conn, prior); err != nil {
		return err
	}
	b.log.Debug("uploading the prior manifest", "bytes", len(prior))
	if _, err := conn.CopyFrom(ctx, bytes.NewReader(prior), "UPLOAD_MANIFEST"); err != nil {
		return classifyIncremental(fmt.Errorf("UPLOAD_MANIFEST: %w", err), true)
	}
	return nil
}

// checkPriorTimeline refuses a prior backup whose WAL is on a timeline that is not this
// server's nor one of its ancestors (TIMELINE_HISTORY), or that continued on its ancestor past
// the point where the server's history left it: decided here, before BASE_BACKUP, so that no
// server message text has to tell it apart from missing summaries afterwards.
func checkPriorTimeline(ctx context.Context, conn *pgconn.PgConn, prior []byte) error {
	m, err := pgformat.ParseManifest(prior)
	if err != nil || len(m.WALRanges) == 0 {
		return nil // checkPriorManifest refused it already
	}
	last := m.WALRanges[0]
	for _, r := range m.WALRanges[1:] {
		if r.Timeline > last.Timeline {
			last = r
		}
	}
	sys, err := pgrepl.IdentifySystem(ctx, conn)
	if err != nil {
		return err
	}
	if last.Timeline == sys.Timeline {
		return nil
	}
	refuse := func(why string) error {
		return &IncrementalError{Kind: ErrPriorTimeline, Err: fmt.Errorf("the prior backup's WAL is on timeline %d up to %s; %s", last.Timeline, last.End, why),
			Advice: "the prior backup is not an earlier state of this server on its current timeline history (another server, a backup of a timeline this server never had, or an older link of the chain): pass the newest backup of this server, or " + adviceFull}
	}
	if last.Timeline > sys.Timeline {
		return refuse(fmt.Sprintf("the server is on timeline %d", sys.Timeline))
	}
	_, content, err := pgrepl.TimelineHistory(ctx, conn, sys.Timeline)
	if err != nil {
		return err
	}
	hist, err := pgformat.ParseHistory(content)
	if err != nil {
		return fmt.Errorf("timeline %d's history: %w", sys.Timeline, err)
	}
	for _, h := range hist {
		if h.Timeline == last.Timeline {
			if last.End > h.SwitchLSN {
				return refuse(fmt.Sprintf("the server's timeline %d left it at %s", sys.Timeline, h.SwitchLSN))
			}
			return nil
		}
	}
	return refuse(fmt.Sprintf("timeline %d is not in the history of the server's timeline %d", last.Timeline, sys.Timeline))
}

// classifyIncremental turns a server error of UPLOAD_MANIFEST or of an incremental
// BASE_BACKUP into an *IncrementalError with advice; other errors are returned as they are.
//
// It goes by SQLSTATE and by what walweave checked before, never by the server's message
// text (which follows its lc_messages): the server reports a prior manifest it refuses with
// no SQLSTATE of its own (XX000) while UPLOAD_MANIFEST finishes, and every unmet
// prerequisite of an incremental BASE_BACKUP with 55000 (object_not_in_prerequisite_state).
// Before either, walweave checked the version, the manifest (parse, version, checksum,
// system identifier), summarize_wal and the prior backup's timeline against the server's
// history; what remains of 55000 is WAL summaries missing or incomplete.
func classifyIncremental(err error, uploading bool) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return err
	}
	if pgErr.Detail != "" {
		err = fmt.Errorf("%w; DETAIL: %s", err, pgErr.Detail)
	}
	if pgErr.Hint != "" {
		err = fmt.Errorf("%w; HINT: %s", err, pgErr.Hint)
	}
	switch {
	case pgErr.Code == "XX000" && uploading:
		return &IncrementalError{Kind: ErrPriorManifest, Err: err,
			Advice: "pass the prior backup's backup_manifest byte for byte as the server wrote it (a PostgreSQL 17+ backup of this server), or " + adviceFull}
	case pgErr.Code == "55000" && !uploading:
		return &IncrementalError{Kind: ErrSummariesMissing, Err: err,
			Advice: "the server has no complete WAL summaries back to the prior backup's start (summarize_wal was off for a while, they were removed after wal_summary_keep_time, or the summarizer lags): " + adviceFull}
	}
	return err
}
