package verify

import (
	"fmt"
	"strings"
	"time"

	"github.com/walweave/walweave/internal/humanize"
	"github.com/walweave/walweave/pgformat"
)

// Problem is one thing wrong with a stream.
type Problem struct {
	// Path is the member (or manifest path) the problem is about; "" for the stream as a whole.
	Path string
	// Reason says what is wrong, in a sentence fragment fit for a log line.
	Reason string
}

// String formats the problem as "path: reason" (or just the reason).
func (p Problem) String() string {
	if p.Path == "" {
		return p.Reason
	}
	return p.Path + ": " + p.Reason
}

// Report is what a check found. Problems lists every problem (up to Options.MaxProblems;
// ProblemsOmitted counts the rest); the other fields describe the backup.
type Report struct {
	// Complete is true when the whole stream was read and every end-of-stream check ran. It
	// is false when reading stopped early (an I/O error, a cancelled context, a caller that
	// stopped at the first problem).
	Complete bool
	// Members is the number of tar members (files, directories and anything else).
	Members int
	// Files and Dirs count regular-file and directory members; Bytes is the content size of
	// the regular files (WAL included).
	Files, Dirs int
	Bytes       int64
	// StreamBytes is the number of bytes read from the stream (tar headers and padding
	// included).
	StreamBytes int64
	// WALSegments counts pg_wal segment members and WALBytes their size; Timelines lists
	// the timelines of the manifest's WAL ranges, oldest first.
	WALSegments int
	WALBytes    int64
	Timelines   []uint32
	// WALRecords is the number of WAL records whose checksum was verified.
	WALRecords int64
	// SegmentSize is the WAL segment size (from the first segment's long page header).
	SegmentSize int64
	// StartLSN and EndLSN are the backup's start and end (from backup_label and the
	// manifest); CheckpointLSN is backup_label's CHECKPOINT LOCATION.
	StartLSN, EndLSN, CheckpointLSN pgformat.LSN
	// StartTimeline is backup_label's START TIMELINE.
	StartTimeline uint32
	// Incremental is true for an incremental backup (PostgreSQL 17+): backup_label has
	// INCREMENTAL FROM lines, the prior backup's start (IncrementalFromLSN and
	// IncrementalFromTLI). IncrementalFiles counts the INCREMENTAL.<name> members. Such a
	// stream cannot be restored alone: restore.Chain applies it on top of the backups
	// it depends on.
	Incremental        bool
	IncrementalFromLSN pgformat.LSN
	IncrementalFromTLI uint32
	IncrementalFiles   int
	// SystemID is the system identifier from global/pg_control (0 if not seen).
	SystemID uint64
	// PGVersion is the major version from PG_VERSION (0 if not seen).
	PGVersion int
	// ManifestVersion is the manifest's version (0 without a readable manifest).
	ManifestVersion int
	// ChecksumAlgorithm is the manifest's checksum algorithm ("NONE" for none, "mixed"
	// when it uses several).
	ChecksumAlgorithm string
	// ChecksumsVerified counts the files whose checksum was compared with the manifest;
	// ChecksumsNotVerified those whose checksum could not be computed (the manifest uses an
	// algorithm that was not computed while the data streamed past: see
	// Options.Algorithm).
	ChecksumsVerified, ChecksumsNotVerified int
	// Duration is how long the check took.
	Duration time.Duration
	// Problems are the problems found (at most Options.MaxProblems).
	Problems []Problem
	// ProblemsOmitted counts problems beyond Options.MaxProblems.
	ProblemsOmitted int
	// Warnings are things that are not wrong but limit what was checked.
	Warnings []string

	maxProblems int
}

// OK reports whether the stream passed every check. A report whose checksums could not all
// be verified (ChecksumsNotVerified > 0) is still OK; String says so in a warning.
func (r *Report) OK() bool {
	return r != nil && r.Complete && len(r.Problems) == 0 && r.ProblemsOmitted == 0
}

// AddProblem records a problem (for callers that find problems of their own, such as a
// restore that re-reads the files it wrote).
func (r *Report) AddProblem(path, reason string) {
	max := r.maxProblems
	if max <= 0 {
		max = DefaultMaxProblems
	}
	if len(r.Problems) >= max {
		r.ProblemsOmitted++
		return
	}
	r.Problems = append(r.Problems, Problem{Path: path, Reason: reason})
}

// Err returns nil when the report is OK, and otherwise an error naming the first problem
// and how many there are.
func (r *Report) Err() error {
	if r.OK() {
		return nil
	}
	n := len(r.Problems) + r.ProblemsOmitted
	switch {
	case n == 0:
		return fmt.Errorf("%w: the stream was not checked to its end", ErrProblems)
	case n == 1:
		return fmt.Errorf("%w: %s", ErrProblems, r.Problems[0])
	default:
		return fmt.Errorf("%w: %s (and %d more)", ErrProblems, r.Problems[0], n-1)
	}
}

// String is a short human summary: one line with the figures, the warnings, then one line
// per problem.
func (r *Report) String() string {
	if r == nil {
		return "no report"
	}
	var b strings.Builder
	status := "OK"
	if !r.OK() {
		n := len(r.Problems) + r.ProblemsOmitted
		switch {
		case n == 0:
			status = "INCOMPLETE"
		case n == 1:
			status = "FAILED (1 problem)"
		default:
			status = fmt.Sprintf("FAILED (%d problems)", n)
		}
	}
	fmt.Fprintf(&b, "%s: %d files (%s), %d WAL segments", status, r.Files, humanize.Bytes(r.Bytes), r.WALSegments)
	if len(r.Timelines) > 0 {
		tl := make([]string, len(r.Timelines))
		for i, t := range r.Timelines {
			tl[i] = fmt.Sprint(t)
		}
		fmt.Fprintf(&b, " on timeline %s", strings.Join(tl, ","))
	}
	if r.StartLSN != 0 || r.EndLSN != 0 {
		fmt.Fprintf(&b, ", WAL %s..%s", r.StartLSN, r.EndLSN)
	}
	if r.SystemID != 0 {
		fmt.Fprintf(&b, ", system %d", r.SystemID)
	}
	if r.PGVersion != 0 {
		fmt.Fprintf(&b, ", PostgreSQL %d", r.PGVersion)
	}
	if r.Incremental {
		fmt.Fprintf(&b, ", incremental from %s on timeline %d (%d INCREMENTAL files)", r.IncrementalFromLSN, r.IncrementalFromTLI, r.IncrementalFiles)
	}
	if r.ChecksumAlgorithm != "" {
		fmt.Fprintf(&b, ", %d %s checksums verified", r.ChecksumsVerified, r.ChecksumAlgorithm)
	}
	fmt.Fprintf(&b, ", %s read in %s", humanize.Bytes(r.StreamBytes), r.Duration.Round(time.Millisecond))
	if r.Duration > 0 && r.StreamBytes > 0 {
		fmt.Fprintf(&b, " (%.0f MB/s)", float64(r.StreamBytes)/1e6/r.Duration.Seconds())
	}
	b.WriteByte('\n')
	if r.ChecksumsNotVerified > 0 {
		fmt.Fprintf(&b, "WARNING: the checksums of %d files were NOT verified: the manifest uses %s, which was not computed while the stream was read; verify a file rather than a pipe, or set the checksum algorithm (--checksum-algorithm=%s)\n",
			r.ChecksumsNotVerified, r.ChecksumAlgorithm, r.ChecksumAlgorithm)
	}
	for _, w := range r.Warnings {
		fmt.Fprintf(&b, "WARNING: %s\n", w)
	}
	for _, p := range r.Problems {
		fmt.Fprintf(&b, "problem: %s\n", p)
	}
	if r.ProblemsOmitted > 0 {
		fmt.Fprintf(&b, "... and %d more problems\n", r.ProblemsOmitted)
	}
	if !r.Complete && len(r.Problems) == 0 {
		b.WriteString("problem: the stream was not checked to its end\n")
	}
	return b.String()
}
