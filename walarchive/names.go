package walarchive

import (
	"strings"

	"github.com/walweave/walweave/pgformat"
)

// Kind is what an archive file holds.
type Kind uint8

// Archive file kinds.
const (
	KindSegment Kind = iota + 1 // a complete WAL segment: <24 hex>[.zst|.lz4]
	KindHistory                 // a timeline history file: <8 hex>.history
	KindPartial                 // the segment in progress: <24 hex>.partial
)

// FileName is a parsed archive file name.
type FileName struct {
	Kind        Kind
	Base        string      // the WAL file name: 24 hex digits, or <8 hex>.history
	Compression Compression // of a complete segment
	Timeline    uint32
	Log, Seg    uint32 // of a segment: the two halves of its name after the timeline
}

// ParseFileName parses the name of a file in an archive directory: a complete segment (with a
// compression suffix or none), a history file or a partial segment. ok is false for anything
// else (temporary files included).
func ParseFileName(name string) (f FileName, ok bool) {
	if tli, ok := pgformat.ParseHistoryFileName(name); ok && tli != 0 {
		return FileName{Kind: KindHistory, Base: name, Timeline: tli}, true
	}
	base, kind, comp := name, KindSegment, Compression{}
	switch {
	case strings.HasSuffix(name, ".partial"):
		base, kind = strings.TrimSuffix(name, ".partial"), KindPartial
	case strings.HasSuffix(name, zstdSuffix):
		base, comp = strings.TrimSuffix(name, zstdSuffix), Compression{Algorithm: Zstd}
	case strings.HasSuffix(name, lz4Suffix):
		base, comp = strings.TrimSuffix(name, lz4Suffix), Compression{Algorithm: LZ4}
	}
	tli, log, seg, ok := pgformat.ParseWALFileName(base)
	if !ok || tli == 0 {
		return FileName{}, false
	}
	return FileName{Kind: kind, Base: base, Compression: comp, Timeline: tli, Log: log, Seg: seg}, true
}

// SegNo returns a segment's number for the segment size (ok false when the name is not valid
// for it).
func (f FileName) SegNo(segSize int) (uint64, bool) {
	if f.Kind == KindHistory {
		return 0, false
	}
	return pgformat.WALSegmentNo(f.Log, f.Seg, segSize)
}

// segmentSizeOf reads the segment size from a segment's long page header.
func segmentSizeOf(data []byte) (int, bool) {
	if len(data) < 40 {
		return 0, false
	}
	n := int(uint32(data[32]) | uint32(data[33])<<8 | uint32(data[34])<<16 | uint32(data[35])<<24)
	return n, pgformat.ValidWALSegmentSize(n)
}
