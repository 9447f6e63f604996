package verify

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math/bits"
	"sort"
	"sync"

	"github.com/walweave/walweave/pgformat"
)

// WAL page and record layout (src/include/access/xlog_internal.h, xlogrecord.h; the same
// in PostgreSQL 15 to 18).
const (
	xlpFirstIsContRecord = 0x0001
	xlpLongHeader        = 0x0002
	// xlpFirstIsOverwriteContrecord marks the first page written after crash recovery found a
	// record cut off at a page boundary: that record is abandoned and the page starts with an
	// XLOG_OVERWRITE_CONTRECORD record (PostgreSQL 15+, also 14.3+).
	xlpFirstIsOverwriteContrecord = 0x0008
	xlpAllFlags                   = 0x000F

	shortPageHeaderSize = 24 // MAXALIGN(sizeof(XLogPageHeaderData))
	longPageHeaderSize  = 40 // MAXALIGN(sizeof(XLogLongPageHeaderData))
	recordHeaderSize    = 24 // SizeOfXLogRecord
	recordCRCOffset     = 20 // offsetof(XLogRecord, xl_crc)
	maxRecordSize       = 1 << 30

	rmXLOGID    = 0    // RM_XLOG_ID
	xlogSwitch  = 0x40 // XLOG_SWITCH
	xlrInfoMask = 0x0F // XLR_INFO_MASK

	maxBlockSize = 1 << 16
	// maxTLIChanges bounds the timeline changes recorded per segment.
	maxTLIChanges = 16
)

// walPageMagic maps XLOG_PAGE_MAGIC values to the PostgreSQL major version that writes
// them (xlog_internal.h of each release branch).
var walPageMagic = map[uint16]int{
	0xD110: 15,
	0xD113: 16,
	0xD116: 17,
	0xD118: 18,
}

// magicOK accepts the known values, and later 0xD1xx values (a release newer than this
// code) only when PG_VERSION says the cluster is newer than the newest known one.
func magicOK(m uint16) bool {
	if _, ok := walPageMagic[m]; ok {
		return true
	}
	return m > 0xD118 && m&0xFF00 == 0xD100
}

// pageBufs holds WAL page buffers (one per checker, returned by Finish).
var pageBufs = sync.Pool{New: func() any { return make([]byte, maxBlockSize) }}

func maxAlign(l pgformat.LSN) pgformat.LSN { return (l + 7) &^ 7 }

// segInfo is what is kept of one WAL segment once it has streamed past.
type segInfo struct {
	name     string
	tli      uint32
	segno    uint64
	start    pgformat.LSN
	size     int64
	sizeOK   bool
	firstBad int64 // offset of the first page that is not a valid WAL page; -1 if none
	badWhy   string
	tlis     []tliChange // page timeline changes before firstBad
	tliTrunc bool
	magic    uint16
}

type tliChange struct {
	off int64
	tli uint32
}

// walState checks WAL segments as they stream past.
type walState struct {
	segSize  int64
	blcksz   int64
	magic    uint16
	sysid    uint64
	sysidSeg string
	segs     map[string]*segInfo
	walkers  map[uint32]*walker
	records  int64
	count    int
	bytes    int64
	history  map[uint32][]byte

	labelStart pgformat.LSN
	labelTLI   uint32

	// the segment being written
	cur     *segInfo
	curW    *walker
	curOff  int64 // offset in the segment of page[0]
	fill    int
	page    []byte
	skip    bool // content of the current segment is not checked
	lastTLI uint32
	zero    []byte
}

func newWALState() *walState {
	return &walState{segs: map[string]*segInfo{}, walkers: map[uint32]*walker{}, history: map[uint32][]byte{}}
}

func (w *walState) segnoOf(l pgformat.LSN) uint64 { return uint64(l) / uint64(w.segSize) }

// begin starts a segment member. It returns a problem to report at once (or "").
func (w *walState) begin(name string, size int64) string {
	tli, log, seg, _ := pgformat.ParseWALFileName(name)
	si := &segInfo{name: name, tli: tli, size: size, firstBad: -1}
	w.segs[name] = si
	w.count++
	w.bytes += size
	w.cur, w.curW, w.curOff, w.fill, w.skip, w.lastTLI = si, nil, 0, 0, false, 0
	if w.page == nil {
		w.page = pageBufs.Get().([]byte)
	}
	if tli == 0 {
		w.skip = true
		si.firstBad, si.badWhy = 0, "timeline 0 in the segment name"
		return "invalid WAL segment name (timeline 0)"
	}
	if w.segSize == 0 {
		// The geometry comes from this segment's long page header; see write.
		si.sizeOK = true
		return ""
	}
	return w.place(si, log, seg)
}

// place computes the segment's number and start once the segment size is known.
func (w *walState) place(si *segInfo, log, seg uint32) string {
	perID := uint64(0x100000000 / w.segSize)
	if uint64(seg) >= perID {
		w.skip = true
		si.firstBad, si.badWhy = 0, "not a valid segment name for this segment size"
		return fmt.Sprintf("invalid WAL segment name for a %d byte segment size", w.segSize)
	}
	si.segno = uint64(log)*perID + uint64(seg)
	si.start = pgformat.LSN(si.segno * uint64(w.segSize))
	if si.size != w.segSize {
		w.skip = true
		si.sizeOK = false
		si.firstBad, si.badWhy = 0, "wrong size"
		return fmt.Sprintf("WAL segment is %d bytes, the WAL segment size is %d (a partial or padded segment)", si.size, w.segSize)
	}
	si.sizeOK = true
	w.curW = w.walkerFor(si)
	return ""
}

// geometry reads the segment and block size from the first segment's long page header.
func (w *walState) geometry(hdr []byte) string {
	segSize := int64(binary.LittleEndian.Uint32(hdr[32:36]))
	blcksz := int64(binary.LittleEndian.Uint32(hdr[36:40]))
	info := binary.LittleEndian.Uint16(hdr[2:4])
	bad := ""
	if info&xlpLongHeader == 0 || !magicOK(binary.LittleEndian.Uint16(hdr[0:2])) {
		bad = "the first page of the first WAL segment has no valid long header"
	} else if segSize < 1<<20 || segSize > 1<<30 || bits.OnesCount64(uint64(segSize)) != 1 {
		bad = fmt.Sprintf("invalid WAL segment size %d in the long page header (must be a power of two from 1 MB to 1 GB)", segSize)
	} else if blcksz < 1024 || blcksz > maxBlockSize || bits.OnesCount64(uint64(blcksz)) != 1 {
		bad = fmt.Sprintf("invalid WAL block size %d in the long page header", blcksz)
	}
	if bad != "" {
		// Fall back on the member size and the usual block size so that the other
		// segments can still be checked.
		s := w.cur.size
		if s >= 1<<20 && s <= 1<<30 && bits.OnesCount64(uint64(s)) == 1 {
			w.segSize, w.blcksz = s, 8192
		}
		return bad
	}
	w.segSize, w.blcksz = segSize, blcksz
	return ""
}

func (w *walState) walkerFor(si *segInfo) *walker {
	wk := w.walkers[si.tli]
	if wk != nil {
		if wk.stopped {
			return nil
		}
		if si.segno != wk.nextSeg {
			if si.segno > wk.nextSeg {
				name := pgformat.WALSegmentFileName(si.tli, wk.nextSeg, int(w.segSize))
				if w.segs[name] != nil {
					wk.stop(wk.pos, stopGap, fmt.Sprintf("segment %s is unusable", name))
				} else {
					wk.stop(wk.pos, stopGap, fmt.Sprintf("segment %s is missing", name))
				}
			} else {
				wk.stop(wk.pos, stopGap, fmt.Sprintf("segment %s comes after a later one", si.name))
			}
			return nil
		}
		return wk
	}
	wk = &walker{tli: si.tli, segSize: w.segSize, blcksz: w.blcksz, nextSeg: si.segno, randAccess: true, owner: w}
	switch {
	case w.labelTLI == si.tli && w.labelStart != 0 && w.segnoOf(w.labelStart) == si.segno:
		wk.pos = w.labelStart
	case w.labelTLI == si.tli && w.labelStart != 0 && si.segno < w.segnoOf(w.labelStart):
		return nil // before the backup's start: not needed, not walked
	default:
		// A newer timeline (or no backup_label yet): start at the first record that
		// begins in this segment.
		wk.pos = si.start
		wk.skipCont = true
	}
	w.walkers[si.tli] = wk
	return wk
}

// write feeds segment content.
func (w *walState) write(p []byte) []string {
	var probs []string
	for len(p) > 0 {
		if w.skip {
			return probs
		}
		need := longPageHeaderSize
		if w.blcksz != 0 {
			need = int(w.blcksz)
		}
		n := copy(w.page[w.fill:need], p)
		w.fill += n
		p = p[n:]
		if w.fill < need {
			break
		}
		if w.blcksz == 0 {
			// first segment, first 40 bytes: the geometry.
			if bad := w.geometry(w.page[:longPageHeaderSize]); bad != "" {
				probs = append(probs, bad)
			}
			if w.segSize == 0 {
				w.skip = true
				w.cur.firstBad, w.cur.badWhy = 0, "unknown segment size"
				return probs
			}
			_, log, seg, _ := pgformat.ParseWALFileName(w.cur.name)
			if msg := w.place(w.cur, log, seg); msg != "" {
				probs = append(probs, msg)
				return probs
			}
			continue
		}
		w.pageDone(w.page[:w.blcksz])
		w.curOff += w.blcksz
		w.fill = 0
	}
	return probs
}

// end finishes the current segment.
func (w *walState) end() {
	si := w.cur
	if si == nil {
		return
	}
	if w.curW != nil && !w.curW.stopped {
		if w.curOff == si.size && si.sizeOK {
			w.curW.nextSeg = si.segno + 1
		} else {
			w.curW.stop(w.curW.pos, stopGap, "segment "+si.name+" is incomplete")
		}
	}
	w.cur, w.curW = nil, nil
}

// pageDone checks one page's header and hands it to the walker.
func (w *walState) pageDone(page []byte) {
	si := w.cur
	off := w.curOff
	pageLSN := si.start + pgformat.LSN(off)
	why := ""
	if si.firstBad < 0 {
		why = w.checkPage(si, off, pageLSN, page)
		if why != "" {
			si.firstBad, si.badWhy = off, why
		}
	} else {
		why = "after an invalid page"
	}
	if w.curW != nil {
		w.curW.page(pageLSN, page, why)
		w.records += w.curW.newRecords
		w.curW.newRecords = 0
	}
}

func (w *walState) checkPage(si *segInfo, off int64, pageLSN pgformat.LSN, page []byte) string {
	magic := binary.LittleEndian.Uint16(page[0:2])
	info := binary.LittleEndian.Uint16(page[2:4])
	tli := binary.LittleEndian.Uint32(page[4:8])
	addr := pgformat.LSN(binary.LittleEndian.Uint64(page[8:16]))
	if magic == 0 {
		if w.zero == nil || len(w.zero) != len(page) {
			w.zero = make([]byte, len(page))
		}
		if bytes.Equal(page, w.zero) {
			return "zero-filled page (no WAL)"
		}
	}
	switch {
	case !magicOK(magic):
		return fmt.Sprintf("invalid WAL page magic %04X", magic)
	case si.magic != 0 && magic != si.magic:
		return fmt.Sprintf("WAL page magic %04X differs from the segment's %04X", magic, si.magic)
	case info&^xlpAllFlags != 0:
		return fmt.Sprintf("invalid info bits %04X in the page header", info)
	case off == 0 && info&xlpLongHeader == 0:
		return "the first page of the segment has no long header"
	case off != 0 && info&xlpLongHeader != 0:
		return "unexpected long page header"
	case addr != pageLSN:
		return fmt.Sprintf("page address is %s, expected %s (a stale, swapped or misnamed segment)", addr, pageLSN)
	case tli == 0 || tli > si.tli:
		return fmt.Sprintf("page timeline %d is not possible in a segment of timeline %d", tli, si.tli)
	case tli < w.lastTLI:
		return fmt.Sprintf("page timeline goes back from %d to %d", w.lastTLI, tli)
	}
	if off == 0 {
		sysid := binary.LittleEndian.Uint64(page[24:32])
		segSize := int64(binary.LittleEndian.Uint32(page[32:36]))
		blcksz := int64(binary.LittleEndian.Uint32(page[36:40]))
		switch {
		case segSize != w.segSize:
			return fmt.Sprintf("long page header says segment size %d, not %d", segSize, w.segSize)
		case blcksz != w.blcksz:
			return fmt.Sprintf("long page header says block size %d, not %d", blcksz, w.blcksz)
		case w.sysidSeg != "" && sysid != w.sysid:
			return fmt.Sprintf("system identifier %d in the long page header differs from %d in %s (a segment of another cluster)", sysid, w.sysid, w.sysidSeg)
		}
		if w.sysidSeg == "" {
			w.sysid, w.sysidSeg = sysid, "pg_wal/"+si.name
		}
		si.magic = magic
		if w.magic == 0 {
			w.magic = magic
		}
	}
	if tli != w.lastTLI {
		if len(si.tlis) < maxTLIChanges {
			si.tlis = append(si.tlis, tliChange{off, tli})
		} else {
			si.tliTrunc = true
		}
		w.lastTLI = tli
	}
	return ""
}

// Walker stop kinds.
const (
	stopEnd    = iota + 1 // a zero record length: the end of the WAL that was written
	stopPage              // an invalid page
	stopRecord            // an invalid record
	stopGap               // a segment is missing
)

// walker follows the chain of WAL records of one timeline across its segments, checking
// each record's length, back-link and CRC, without holding record data.
type walker struct {
	owner      *walState
	tli        uint32
	segSize    int64
	blcksz     int64
	nextSeg    uint64
	pos        pgformat.LSN
	skipCont   bool
	randAccess bool
	started    bool
	start      pgformat.LSN

	inRec    bool
	recStart pgformat.LSN
	tot      uint32
	got      uint32
	hdr      [recordHeaderSize]byte
	crc      uint32
	prev     pgformat.LSN

	validEnd   pgformat.LSN
	newRecords int64

	stopped  bool
	stopAt   pgformat.LSN
	stopKind int
	stopWhy  string
}

// why describes where and why the walker stopped.
func (k *walker) why() string {
	if k.stopKind == stopPage {
		return fmt.Sprintf("%s at %s", k.stopWhy, k.stopAt)
	}
	return k.stopWhy
}

func (k *walker) stop(at pgformat.LSN, kind int, why string) {
	if k.stopped {
		return
	}
	k.stopped, k.stopAt, k.stopKind, k.stopWhy = true, at, kind, why
}

func (k *walker) page(pageLSN pgformat.LSN, page []byte, invalid string) {
	if k.stopped {
		return
	}
	bl := pgformat.LSN(len(page))
	if pageLSN+bl <= k.pos {
		return
	}
	if k.pos < pageLSN {
		k.stop(k.pos, stopGap, fmt.Sprintf("no WAL at %s", k.pos))
		return
	}
	if invalid != "" {
		k.stop(pageLSN, stopPage, invalid)
		return
	}
	info := binary.LittleEndian.Uint16(page[2:4])
	hsize := pgformat.LSN(shortPageHeaderSize)
	if info&xlpLongHeader != 0 {
		hsize = longPageHeaderSize
	}
	remLen := binary.LittleEndian.Uint32(page[16:20])
	off := k.pos - pageLSN
	if off == 0 {
		switch {
		case k.inRec && info&xlpFirstIsOverwriteContrecord != 0:
			// The record in progress was never completed (crash); the WAL goes on here.
			k.inRec = false
			off = hsize
		case k.inRec:
			if info&xlpFirstIsContRecord == 0 {
				k.stop(pageLSN, stopRecord, fmt.Sprintf("there is no contrecord flag at %s (record at %s continues)", pageLSN, k.recStart))
				return
			}
			if remLen == 0 || remLen != k.tot-k.got {
				k.stop(pageLSN, stopRecord, fmt.Sprintf("invalid contrecord length %d at %s, expected %d", remLen, pageLSN, k.tot-k.got))
				return
			}
			off = hsize
		case k.skipCont:
			if info&xlpFirstIsContRecord != 0 {
				if pgformat.LSN(remLen) > bl-hsize {
					k.pos = pageLSN + bl
					return
				}
				k.pos = maxAlign(pageLSN + hsize + pgformat.LSN(remLen))
				off = k.pos - pageLSN
			} else {
				off = hsize
			}
			k.skipCont = false
			if off >= bl {
				k.pos = pageLSN + off
				return
			}
		default:
			if info&xlpFirstIsContRecord != 0 {
				k.stop(pageLSN, stopRecord, fmt.Sprintf("contrecord is requested by %s", pageLSN))
				return
			}
			off = hsize
		}
	} else if off < hsize {
		k.stop(k.pos, stopRecord, fmt.Sprintf("invalid record offset at %s", k.pos))
		return
	}
	for off < bl {
		if !k.inRec {
			recLSN := pageLSN + off
			if recLSN%8 != 0 {
				k.stop(recLSN, stopRecord, fmt.Sprintf("invalid record offset at %s", recLSN))
				return
			}
			tot := binary.LittleEndian.Uint32(page[off : off+4])
			if tot == 0 {
				k.stop(recLSN, stopEnd, fmt.Sprintf("the WAL ends at %s (zero record length)", recLSN))
				return
			}
			if tot < recordHeaderSize || tot > maxRecordSize {
				k.stop(recLSN, stopRecord, fmt.Sprintf("invalid record length %d at %s", tot, recLSN))
				return
			}
			if !k.started {
				k.started, k.start = true, recLSN
			}
			k.inRec, k.recStart, k.tot, k.got, k.crc = true, recLSN, tot, 0, 0
		}
		n := pgformat.LSN(k.tot - k.got)
		if n > bl-off {
			n = bl - off
		}
		chunk := page[off : off+n]
		off += n
		if k.got < recordHeaderSize {
			h := uint32(recordHeaderSize) - k.got
			if h > uint32(len(chunk)) {
				h = uint32(len(chunk))
			}
			copy(k.hdr[k.got:], chunk[:h])
			k.got += h
			chunk = chunk[h:]
			if k.got == recordHeaderSize && !k.checkHeader() {
				return
			}
		}
		if len(chunk) > 0 {
			k.crc = crc32.Update(k.crc, pgformat.Castagnoli, chunk)
			k.got += uint32(len(chunk))
		}
		if k.got < k.tot {
			continue // continues on the next page
		}
		// The record is complete.
		crc := crc32.Update(k.crc, pgformat.Castagnoli, k.hdr[:recordCRCOffset])
		if want := binary.LittleEndian.Uint32(k.hdr[recordCRCOffset:]); crc != want {
			k.stop(k.recStart, stopRecord, fmt.Sprintf("incorrect record checksum at %s (a corrupted record)", k.recStart))
			return
		}
		k.inRec = false
		k.randAccess = false
		k.prev = k.recStart
		k.newRecords++
		end := pageLSN + off // page headers make it more than recStart+tot when it spans pages
		if k.hdr[17] == rmXLOGID && k.hdr[16]&^xlrInfoMask == xlogSwitch {
			// The rest of the segment is unused.
			seg := pgformat.LSN(k.segSize)
			end = (end + seg - 1) / seg * seg
			k.validEnd, k.pos = end, end
			return
		}
		k.validEnd = maxAlign(end) // like xlogreader's NextRecPtr, and the server's insert positions
		k.pos = k.validEnd
		off = k.pos - pageLSN
	}
	if k.inRec {
		k.pos = pageLSN + bl
	}
}

func (k *walker) checkHeader() bool {
	prev := pgformat.LSN(binary.LittleEndian.Uint64(k.hdr[8:16]))
	if k.randAccess {
		if prev >= k.recStart {
			k.stop(k.recStart, stopRecord, fmt.Sprintf("record with incorrect prev-link %s at %s", prev, k.recStart))
			return false
		}
	} else if prev != k.prev {
		k.stop(k.recStart, stopRecord, fmt.Sprintf("record with incorrect prev-link %s at %s, expected %s", prev, k.recStart, k.prev))
		return false
	}
	return true
}

// parseHistory parses a timeline history file (pgformat.ParseHistory) into the switch
// LSN of each timeline it lists.
func parseHistory(b []byte) (map[uint32]pgformat.LSN, error) {
	h, err := pgformat.ParseHistory(b)
	if err != nil {
		return nil, err
	}
	out := make(map[uint32]pgformat.LSN, len(h))
	for _, e := range h {
		out[e.Timeline] = e.SwitchLSN
	}
	return out, nil
}

// finish checks the WAL against the manifest's ranges.
func (w *walState) finish(c *Checker, ranges []pgformat.WALRange) {
	if len(ranges) == 0 {
		return
	}
	asc := append([]pgformat.WALRange(nil), ranges...)
	sort.Slice(asc, func(i, j int) bool { return asc[i].Timeline < asc[j].Timeline })
	if w.segSize == 0 {
		if w.count == 0 {
			c.problem("pg_wal", fmt.Sprintf("no WAL segments in the stream; the backup needs WAL from %s to %s", asc[0].Start, asc[len(asc)-1].End))
		} else {
			c.problem("pg_wal", "the WAL segment size could not be determined; WAL not checked")
		}
		return
	}
	tliAt := func(l pgformat.LSN) uint32 {
		if l < asc[0].Start {
			return 0
		}
		t := asc[0].Timeline
		for _, r := range asc {
			if l >= r.Start {
				t = r.Timeline
			}
		}
		return t
	}
	for _, rg := range asc {
		first := w.segnoOf(rg.Start)
		last := first
		if rg.End > rg.Start {
			last = w.segnoOf(rg.End - 1)
		}
		if last-first > 1<<22 {
			c.problem("backup_manifest", fmt.Sprintf("WAL range of timeline %d (%s..%s) is implausibly large", rg.Timeline, rg.Start, rg.End))
			continue
		}
		needs := fmt.Sprintf("timeline %d needs WAL from %s to %s", rg.Timeline, rg.Start, rg.End)
		var missFrom uint64
		missing, anyMissing := 0, false
		flush := func() {
			if missing == 0 {
				return
			}
			anyMissing = true
			name := pgformat.WALSegmentFileName(rg.Timeline, missFrom, int(w.segSize))
			if missing == 1 {
				c.problem("pg_wal/"+name, fmt.Sprintf("missing WAL segment (%s)", needs))
			} else {
				c.problem("pg_wal/"+name, fmt.Sprintf("missing %d WAL segments from this one to %s (%s)",
					missing, pgformat.WALSegmentFileName(rg.Timeline, missFrom+uint64(missing)-1, int(w.segSize)), needs))
			}
			missing = 0
		}
		var present []*segInfo
		for segno := first; segno <= last; segno++ {
			si := w.segs[pgformat.WALSegmentFileName(rg.Timeline, segno, int(w.segSize))]
			if si == nil {
				if missing == 0 {
					missFrom = segno
				}
				missing++
				continue
			}
			flush()
			if si.sizeOK {
				present = append(present, si)
			} else {
				anyMissing = true // its size was reported when it ended
			}
		}
		flush()
		// Page timelines: a page carries the timeline it was begun on.
		for _, si := range present {
			limit := si.size
			if si.firstBad >= 0 {
				limit = si.firstBad
			}
			ci := 0
			for off := int64(0); len(si.tlis) > 0 && off < limit && si.start+pgformat.LSN(off) < rg.End; off += w.blcksz {
				for ci+1 < len(si.tlis) && si.tlis[ci+1].off <= off {
					ci++
				}
				if want := tliAt(si.start + pgformat.LSN(off)); want != 0 && si.tlis[ci].tli != want {
					c.problem("pg_wal/"+si.name, fmt.Sprintf("page at %s carries timeline %d, expected %d from the WAL ranges", si.start+pgformat.LSN(off), si.tlis[ci].tli, want))
					break
				}
			}
		}
		// The record chain decides: it read every page and record the backup needs.
		k := w.walkers[rg.Timeline]
		stopAt := pgformat.LSN(0)
		switch {
		case anyMissing:
			// reported above; the chain stops at the gap.
			if k != nil && k.started && k.validEnd < rg.End && k.stopKind != stopGap && k.stopAt < rg.End {
				stopAt = k.stopAt
				c.problem("pg_wal/"+pgformat.WALSegmentFileName(rg.Timeline, w.segnoOf(k.stopAt), int(w.segSize)), fmt.Sprintf("%s (%s)", k.why(), needs))
			}
		case k == nil || !k.started:
			why := ""
			if k != nil && k.stopped {
				why = ": " + k.stopWhy
			}
			c.problem("pg_wal", fmt.Sprintf("no WAL record of timeline %d could be read%s (%s)", rg.Timeline, why, needs))
		case k.start > rg.Start:
			c.problem("pg_wal", fmt.Sprintf("WAL records of timeline %d could only be checked from %s (%s)", rg.Timeline, k.start, needs))
		case k.validEnd < rg.End:
			stopAt = k.stopAt
			where := "pg_wal"
			if w.segSize > 0 {
				where = "pg_wal/" + pgformat.WALSegmentFileName(rg.Timeline, w.segnoOf(k.stopAt), int(w.segSize))
			}
			if k.stopKind == stopEnd {
				c.problem(where, fmt.Sprintf("the WAL ends at %s, before the end of the backup (%s)", k.stopAt, needs))
			} else {
				c.problem(where, fmt.Sprintf("%s (%s)", k.why(), needs))
			}
		}
		// Beyond where the chain stopped, a segment whose very first page is wrong is
		// reported too (pages further in may be unused space after a WAL switch).
		if stopAt != 0 {
			for _, si := range present {
				if si.start > stopAt && si.firstBad == 0 {
					c.problem("pg_wal/"+si.name, fmt.Sprintf("%s at %s (%s)", si.badWhy, si.start, needs))
				}
			}
		}
	}
	// History files for every timeline above 1.
	for i, rg := range asc {
		if rg.Timeline <= 1 {
			continue
		}
		name := "pg_wal/" + pgformat.HistoryFileName(rg.Timeline)
		b, ok := w.history[rg.Timeline]
		if !ok {
			c.problem(name, fmt.Sprintf("missing timeline history file (the backup spans timeline %d)", rg.Timeline))
			continue
		}
		h, err := parseHistory(b)
		if err != nil {
			c.problem(name, "invalid timeline history file: "+err.Error())
			continue
		}
		if i > 0 {
			prev := asc[i-1]
			sw, ok := h[prev.Timeline]
			switch {
			case !ok:
				c.problem(name, fmt.Sprintf("timeline history does not list timeline %d, which the WAL ranges include", prev.Timeline))
			case sw != prev.End || sw != rg.Start:
				c.problem(name, fmt.Sprintf("timeline %d ends at %s in the history file, but the WAL ranges switch at %s", prev.Timeline, sw, rg.Start))
			}
		}
	}
}
