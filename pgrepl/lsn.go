package pgrepl

import "github.com/walweave/walweave/pgformat"

// LSN is a PostgreSQL write-ahead log position: pgformat's LSN, the one LSN type of walweave
// (text and slog forms "16/B374D848").
type LSN = pgformat.LSN

// ParseLSN parses the textual form PostgreSQL uses for an LSN ("16/B374D848").
func ParseLSN(s string) (LSN, error) { return pgformat.ParseLSN(s) }

// SegmentStart returns the LSN of the first byte of the WAL segment holding l.
func SegmentStart(l LSN, segSize int) LSN { return l.SegmentStart(segSize) }

// WALFileName returns the name of the WAL file (under pg_wal/) holding l on timeline tli.
func WALFileName(tli uint32, l LSN, segSize int) string { return pgformat.WALFileName(tli, l, segSize) }

// AppendWALFileName appends the WAL file name of the segment holding l on tli to dst.
func AppendWALFileName(dst []byte, tli uint32, l LSN, segSize int) []byte {
	return pgformat.AppendWALFileName(dst, tli, l, segSize)
}

// HistoryFileName returns the name of timeline tli's history file, e.g. "00000002.history".
func HistoryFileName(tli uint32) string { return pgformat.HistoryFileName(tli) }
