package mux

import "github.com/walweave/walweave/source/basebackup"

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
