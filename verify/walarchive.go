package verify

import (
	"fmt"

	"github.com/walweave/walweave/pgformat"
)

// WALArchive checks the complete WAL segment files of a WAL archive (package walarchive), with
// no backup around them: each page header (magic, info bits, address, timeline, the long header
// of a segment's first page, one system identifier), and the chain of records of each timeline
// across its segments (length, back-link, CRC-32C), from the first record that begins in the
// timeline's first segment given. Give it the segments of each timeline in ascending order;
// a segment that does not follow the previous one of its timeline stops that timeline's record
// chain (reported as a gap). A WALArchive is not safe for concurrent use.
type WALArchive struct {
	c *Checker
}

// NewWALArchive returns an empty WALArchive.
func NewWALArchive() *WALArchive {
	c, _ := NewChecker(Options{})
	return &WALArchive{c: c}
}

// Segment checks one complete segment file. name is its file name (24 hex digits), data its
// (decompressed) content.
func (a *WALArchive) Segment(name string, data []byte) {
	w := a.c.wal
	if msg := w.begin(name, int64(len(data))); msg != "" {
		a.c.problem(name, msg)
	}
	for _, msg := range w.write(data) {
		a.c.problem(name, msg)
	}
	w.end()
}

// Finish returns the problems found: those of Segment, and for each timeline where its record
// chain stopped (an invalid page or record, a zero record length inside a complete segment, a
// missing segment), the segment and the reason. Report.WALSegments, WALBytes, WALRecords and
// SegmentSize are set.
func (a *WALArchive) Finish() *Report {
	w := a.c.wal
	for tli, k := range w.walkers {
		if !k.stopped || w.segSize == 0 {
			continue
		}
		name := pgformat.WALSegmentFileName(tli, w.segnoOf(k.stopAt), int(w.segSize))
		why := k.why()
		if k.stopKind == stopEnd {
			why = fmt.Sprintf("%s inside a complete segment (zeroed or truncated WAL)", why)
		}
		a.c.problem(name, why)
	}
	r := a.c.rep
	r.WALSegments, r.WALBytes, r.WALRecords, r.SegmentSize = w.count, w.bytes, w.records, w.segSize
	if w.page != nil {
		pageBufs.Put(w.page)
		w.page = nil
	}
	return &r
}
