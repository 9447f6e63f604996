package verify

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// ErrChain is wrapped by CheckChain's error: the streams do not form a chain.
var ErrChain = errors.New("the backups do not form a chain")

// CheckChain checks that reports, in order, describe a chain a restore can apply: a full
// backup first, then incremental backups each taken from the one before it (its INCREMENTAL
// FROM LSN and TLI are the previous backup's START WAL LOCATION and START TIMELINE), all of
// one cluster (the same system identifier). names name the streams in the error. It does not
// look at whether each stream is good (Report.OK).
func CheckChain(names []string, reports []*Report) error {
	if len(reports) == 0 {
		return fmt.Errorf("%w: no backup", ErrChain)
	}
	name := func(i int) string {
		if i < len(names) && names[i] != "" {
			return names[i]
		}
		return fmt.Sprintf("backup %d", i+1)
	}
	first := reports[0]
	if first.Incremental {
		return fmt.Errorf("%w: %s is an incremental backup (from %s on timeline %d); a chain starts with a full backup: give the full backup first, then the incremental backups in the order they were taken",
			ErrChain, name(0), first.IncrementalFromLSN, first.IncrementalFromTLI)
	}
	for i := 1; i < len(reports); i++ {
		r, prev := reports[i], reports[i-1]
		if !r.Incremental {
			return fmt.Errorf("%w: %s is a full backup; only the first backup of a chain is full (restore it alone, or start the chain with it)", ErrChain, name(i))
		}
		if first.PGVersion != 0 && r.PGVersion != 0 && r.PGVersion != first.PGVersion {
			return fmt.Errorf("%w: %s is a backup of PostgreSQL %d, %s of PostgreSQL %d: a chain is of one cluster, and an upgrade starts a new chain (take a full backup after it)", ErrChain, name(i), r.PGVersion, name(0), first.PGVersion)
		}
		if first.SystemID != 0 && r.SystemID != 0 && r.SystemID != first.SystemID {
			return fmt.Errorf("%w: %s is a backup of another cluster (system identifier %d; %s's is %d)", ErrChain, name(i), r.SystemID, name(0), first.SystemID)
		}
		if r.IncrementalFromLSN == prev.StartLSN && r.IncrementalFromTLI == prev.StartTimeline {
			continue
		}
		for j, o := range reports {
			if j != i && r.IncrementalFromLSN == o.StartLSN && r.IncrementalFromTLI == o.StartTimeline {
				return fmt.Errorf("%w: %s was taken from %s (INCREMENTAL FROM %s on timeline %d), not from %s (which starts at %s on timeline %d): give the backups in the order they were taken",
					ErrChain, name(i), name(j), r.IncrementalFromLSN, r.IncrementalFromTLI, name(i-1), prev.StartLSN, prev.StartTimeline)
			}
		}
		hint := "a backup between them is missing, or the backups are out of order"
		if r.IncrementalFromLSN < prev.StartLSN {
			hint = "it was taken from an older backup than " + name(i-1) + ", or the order is wrong"
		}
		if r.SystemID == 0 || first.SystemID == 0 {
			hint += ", or it is a backup of another cluster"
		}
		return fmt.Errorf("%w: %s does not follow %s: it was taken from the backup that starts at %s on timeline %d, %s starts at %s on timeline %d (%s)",
			ErrChain, name(i), name(i-1), r.IncrementalFromLSN, r.IncrementalFromTLI, name(i-1), prev.StartLSN, prev.StartTimeline, hint)
	}
	return nil
}

// ChainStream is one stream of a chain: a name for messages and the stream itself.
type ChainStream struct {
	Name string
	R    io.Reader
}

// Chain checks each stream with Stream (one after the other, each read once) and then that
// they form a chain (CheckChain). The error is for I/O, ctx and options, and a chain that
// does not link (wrapping ErrChain); problems inside a stream are in its report.
func Chain(ctx context.Context, streams []ChainStream, opts Options) ([]*Report, error) {
	var reps []*Report
	var names []string
	for _, s := range streams {
		rep, err := Stream(ctx, s.R, opts)
		if rep != nil && len(reps) > 0 {
			rep.DropIncrementalWarning()
		}
		reps = append(reps, rep)
		names = append(names, s.Name)
		if err != nil {
			return reps, fmt.Errorf("%s: %w", s.Name, err)
		}
	}
	return reps, CheckChain(names, reps)
}
