package verifytest

import (
	"encoding/binary"
	"hash/crc32"
	"math/rand"
)

// WALGen writes synthetic but valid WAL: page headers, records with correct lengths,
// back-links and CRCs, records crossing pages and segments, optional XLOG_SWITCH records.
type WALGen struct {
	SegSize int64
	BlockSz int64
	SysID   uint64
	TLI     uint32
	Magic   uint16

	segs     map[uint64][]byte
	pos      uint64
	prev     uint64
	rnd      *rand.Rand
	firstSeg uint64
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// NewWALGen starts WAL at the first record of segment firstSeg.
func NewWALGen(segSize int64, sysid uint64, tli uint32, firstSeg uint64, seed int64) *WALGen {
	g := &WALGen{SegSize: segSize, BlockSz: 8192, SysID: sysid, TLI: tli, Magic: 0xD110,
		segs: map[uint64][]byte{}, rnd: rand.New(rand.NewSource(seed)), firstSeg: firstSeg}
	g.pos = firstSeg * uint64(segSize)
	return g
}

// Pos returns the LSN where the next record starts (after the page header when at a page
// start).
func (g *WALGen) Pos() uint64 {
	p := g.pos
	if p%uint64(g.BlockSz) == 0 {
		if p%uint64(g.SegSize) == 0 {
			return p + 40
		}
		return p + 24
	}
	return p
}

func (g *WALGen) seg(segno uint64) []byte {
	s := g.segs[segno]
	if s == nil {
		s = make([]byte, g.SegSize)
		g.segs[segno] = s
	}
	return s
}

func (g *WALGen) pageHeader(at uint64, remLen uint32) {
	segno := at / uint64(g.SegSize)
	s := g.seg(segno)
	off := at % uint64(g.SegSize)
	info := uint16(0)
	if remLen > 0 {
		info |= 0x0001
	}
	if off == 0 {
		info |= 0x0002
	}
	binary.LittleEndian.PutUint16(s[off:], g.Magic)
	binary.LittleEndian.PutUint16(s[off+2:], info)
	binary.LittleEndian.PutUint32(s[off+4:], g.TLI)
	binary.LittleEndian.PutUint64(s[off+8:], at)
	binary.LittleEndian.PutUint32(s[off+16:], remLen)
	if off == 0 {
		binary.LittleEndian.PutUint64(s[off+24:], g.SysID)
		binary.LittleEndian.PutUint32(s[off+32:], uint32(g.SegSize))
		binary.LittleEndian.PutUint32(s[off+36:], uint32(g.BlockSz))
	}
}

// Record appends a record with payload bytes of data and returns its start and end LSN.
// rmid/info are the record's resource manager and info byte.
func (g *WALGen) Record(payload int, rmid, info byte) (start, end uint64) {
	rec := make([]byte, 24+payload)
	binary.LittleEndian.PutUint32(rec[0:], uint32(len(rec)))
	g.rnd.Read(rec[24:])
	rec[16], rec[17] = info, rmid
	// the back-link is filled once the start is known
	written := 0
	for written < len(rec) {
		bl := uint64(g.BlockSz)
		if g.pos%bl == 0 {
			g.pageHeader(g.pos, uint32(len(rec)-written)*boolToU32(written > 0))
			if g.pos%uint64(g.SegSize) == 0 {
				g.pos += 40
			} else {
				g.pos += 24
			}
		}
		if written == 0 {
			start = g.pos
			binary.LittleEndian.PutUint64(rec[8:], g.prev)
			crc := crc32.Update(0, castagnoli, rec[24:])
			crc = crc32.Update(crc, castagnoli, rec[:20])
			binary.LittleEndian.PutUint32(rec[20:], crc)
		}
		room := int((g.pos/bl+1)*bl - g.pos)
		n := min(room, len(rec)-written)
		s := g.seg(g.pos / uint64(g.SegSize))
		off := g.pos % uint64(g.SegSize)
		copy(s[off:], rec[written:written+n])
		written += n
		g.pos += uint64(n)
	}
	end = g.pos
	g.prev = start
	g.pos = (g.pos + 7) &^ 7
	if rmid == 0 && info&0xF0 == 0x40 { // XLOG_SWITCH: the rest of the segment is unused
		ss := uint64(g.SegSize)
		g.pos = (g.pos + ss - 1) / ss * ss
		// initialise the remaining pages' headers, as the server does
		for p := (end + uint64(g.BlockSz) - 1) / uint64(g.BlockSz) * uint64(g.BlockSz); p < g.pos; p += uint64(g.BlockSz) {
			g.pageHeader(p, 0)
		}
	}
	return start, end
}

func boolToU32(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}

// Records appends n records with payloads of random sizes up to max bytes.
func (g *WALGen) Records(n, max int) (first, end uint64) {
	for i := 0; i < n; i++ {
		s, e := g.Record(g.rnd.Intn(max+1), 10, 0)
		if i == 0 {
			first = s
		}
		end = e
	}
	return first, end
}

// Segment returns segment segno's bytes (all zero if nothing was written in it).
func (g *WALGen) Segment(segno uint64) []byte { return g.seg(segno) }

// LastSeg returns the number of the segment holding the current position.
func (g *WALGen) LastSeg() uint64 {
	p := g.pos
	if p%uint64(g.SegSize) == 0 && p > 0 {
		p--
	}
	return p / uint64(g.SegSize)
}
