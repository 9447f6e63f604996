package verify

import (
	"encoding/binary"
	"fmt"

	"github.com/walweave/walweave/pgformat"
)

// incMember checks an INCREMENTAL.<name> member (PostgreSQL 17+ incremental backups) as it
// streams past: the magic number, and block numbers that are strictly ascending. Block
// size and RELSEG_SIZE come from global/pg_control, which comes later in the stream, so the
// checks that need them (the counts, the padding, the size) run at Finish.
type incMember struct {
	name, rel string
	size, n   int64

	head       [12]byte
	got        int64 // header bytes seen (fixed part and block numbers)
	numBuf     [4]byte
	count      uint32
	trunc      uint32
	last       uint32
	maxBlock   uint32
	badNumbers string
}

func (m *incMember) write(p []byte) {
	for len(p) > 0 {
		switch {
		case m.got < 12:
			k := copy(m.head[m.got:], p)
			m.got += int64(k)
			p = p[k:]
			if m.got == 12 {
				m.count = binary.LittleEndian.Uint32(m.head[4:])
				m.trunc = binary.LittleEndian.Uint32(m.head[8:])
			}
		case m.got < 12+4*int64(m.count):
			off := (m.got - 12) % 4
			k := copy(m.numBuf[off:], p)
			m.got += int64(k)
			p = p[k:]
			if off+int64(k) == 4 {
				b := binary.LittleEndian.Uint32(m.numBuf[:])
				i := (m.got-12)/4 - 1
				if i > 0 && b <= m.last && m.badNumbers == "" {
					m.badNumbers = fmt.Sprintf("block number %d follows %d: the block numbers must be strictly ascending", b, m.last)
				}
				m.last = b
				m.maxBlock = max(m.maxBlock, b)
			}
		default:
			return
		}
	}
}

// WarningIncremental is the warning of an incremental backup's report; a chain's check, which
// puts the backup in its place, drops it (Report.DropIncrementalWarning).
const WarningIncremental = "an incremental backup: it cannot be restored alone; restore it after the backups it depends on (walweave restore -D DIR FULL INC1 ... THIS)"

// DropIncrementalWarning removes WarningIncremental from the report's warnings.
func (r *Report) DropIncrementalWarning() {
	w := r.Warnings[:0]
	for _, s := range r.Warnings {
		if s != WarningIncremental {
			w = append(w, s)
		}
	}
	r.Warnings = w
}

// checkIncremental checks the INCREMENTAL members against pg_control's block size and
// RELSEG_SIZE, and the backup_label's INCREMENTAL lines against the members.
func (c *Checker) checkIncremental() {
	c.rep.IncrementalFiles = len(c.incs)
	if c.rep.Incremental {
		c.rep.Warnings = append(c.rep.Warnings, WarningIncremental)
	}
	if len(c.incs) > 0 && !c.rep.Incremental {
		c.problem("backup_label", fmt.Sprintf("no INCREMENTAL FROM lines, but the stream has %d INCREMENTAL files", len(c.incs)))
	}
	if c.rep.Incremental && (c.rep.IncrementalFromLSN == 0 || c.rep.IncrementalFromTLI == 0) {
		c.problem("backup_label", "INCREMENTAL FROM LSN and INCREMENTAL FROM TLI must come together")
	}
	if c.rep.Incremental && c.label != nil && c.rep.IncrementalFromLSN >= c.label.start {
		c.problem("backup_label", fmt.Sprintf("INCREMENTAL FROM LSN %s is not before the backup's START WAL LOCATION %s", c.rep.IncrementalFromLSN, c.label.start))
	}
	if len(c.incs) == 0 {
		return
	}
	if c.controlHead == nil {
		c.problem("global/pg_control", "missing: the INCREMENTAL files cannot be checked without its block size")
		return
	}
	ctl, err := pgformat.ParseControlFile(c.controlHead)
	if err != nil {
		c.problem("global/pg_control", fmt.Sprintf("unreadable (%v): the INCREMENTAL files were not checked", err))
		return
	}
	blcksz, relseg := int(ctl.BlockSize), int64(ctl.RelsegSize)
	for _, m := range c.incs {
		switch {
		case m.got < 12:
			c.problem(m.name, fmt.Sprintf("INCREMENTAL file of %d bytes, shorter than its 12-byte header", m.n))
			continue
		case binary.LittleEndian.Uint32(m.head[:]) != pgformat.IncrementalMagic:
			c.problem(m.name, fmt.Sprintf("INCREMENTAL file with magic number 0x%08x, not 0x%08x", binary.LittleEndian.Uint32(m.head[:]), uint32(pgformat.IncrementalMagic)))
			continue
		case int64(m.count) > relseg:
			c.problem(m.name, fmt.Sprintf("INCREMENTAL file lists %d blocks, more than a segment's %d", m.count, relseg))
			continue
		case int64(m.trunc) > relseg:
			c.problem(m.name, fmt.Sprintf("INCREMENTAL truncation block length %d exceeds the segment's %d blocks", m.trunc, relseg))
			continue
		case m.badNumbers != "":
			c.problem(m.name, m.badNumbers)
			continue
		case m.count > 0 && int64(m.maxBlock) >= relseg:
			c.problem(m.name, fmt.Sprintf("INCREMENTAL block number %d is past the segment's %d blocks", m.maxBlock, relseg))
			continue
		}
		want := pgformat.IncrementalFileSize(pgformat.IncrementalHeader{BlockCount: m.count}, blcksz)
		if m.n != want {
			c.problem(m.name, fmt.Sprintf("INCREMENTAL file of %d bytes; its header (%d blocks of %d bytes) makes it %d", m.n, m.count, blcksz, want))
		}
	}
}
