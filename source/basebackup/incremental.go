package basebackup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/walweave/walweave/pgformat"
	"github.com/walweave/walweave/pgrepl"
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
	b.log.Debug("uploading the prior manifest", "bytes", len(prior))
	if _, err := conn.CopyFrom(ctx, bytes.NewReader(prior), "UPLOAD_MANIFEST"); err != nil {
		return classifyIncremental(fmt.Errorf("UPLOAD_MANIFEST: %w", err))
	}
	return nil
}

// classifyIncremental turns a server error of UPLOAD_MANIFEST or of an incremental
// BASE_BACKUP into an *IncrementalError with advice; other errors are returned as they are.
//
// The SQLSTATE picks the family: the server reports a prior manifest it refuses (version 1,
// another system identifier, a checksum mismatch) with no SQLSTATE of its own (XX000, an
// internal error) while UPLOAD_MANIFEST finishes, and every unmet prerequisite of an
// incremental BASE_BACKUP (summaries missing or incomplete, a timeline not in the server's
// history, a manifest ending after this backup's start, summarization off) with 55000,
// object_not_in_prerequisite_state. Inside a family only the message tells the cases apart,
// so the advice is picked by the message's fixed words (PostgreSQL 17 and 18's English
// texts); an unrecognised message keeps the family's general advice. walweave checks the
// version and system identifier itself before uploading, so those messages are rare.
func classifyIncremental(err error) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return err
	}
	msg := pgErr.Message
	if pgErr.Detail != "" {
		err = fmt.Errorf("%w; DETAIL: %s", err, pgErr.Detail)
	}
	if pgErr.Hint != "" {
		err = fmt.Errorf("%w; HINT: %s", err, pgErr.Hint)
	}
	switch pgErr.Code {
	case "XX000":
		if !strings.Contains(strings.ToLower(msg), "manifest") {
			return err
		}
		if strings.Contains(msg, "system identifier") {
			return &IncrementalError{Kind: ErrPriorOtherSystem, Err: err, Advice: "pass a prior backup of this server, or " + adviceFull}
		}
		return &IncrementalError{Kind: ErrPriorManifest, Err: err,
			Advice: "pass the prior backup's backup_manifest byte for byte as the server wrote it (a PostgreSQL 17+ backup of this server), or " + adviceFull}
	case "55000":
		switch {
		case strings.Contains(msg, "WAL summarization is enabled"):
			return &IncrementalError{Kind: ErrSummarizeWALOff, Err: err,
				Advice: "set summarize_wal = on on the server, then " + adviceFull}
		case strings.Contains(msg, "WAL summaries are required"), strings.Contains(msg, "WAL summarization is not progressing"):
			return &IncrementalError{Kind: ErrSummariesMissing, Err: err,
				Advice: "the server has no complete WAL summaries back to the prior backup's start (summarize_wal was off for a while, or they were removed after wal_summary_keep_time): " + adviceFull}
		case strings.Contains(msg, "timeline"):
			return &IncrementalError{Kind: ErrPriorTimeline, Err: err,
				Advice: "the prior backup is not an earlier state of this server on its current timeline history (another server, a backup of a timeline this server never had, or an older link of the chain): pass the newest backup of this server, or " + adviceFull}
		case strings.Contains(msg, "UPLOAD_MANIFEST"):
			return err
		}
		return &IncrementalError{Kind: ErrSummariesMissing, Err: err, Advice: adviceFull}
	}
	return err
}
