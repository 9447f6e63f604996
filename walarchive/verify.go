package walarchive

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/walweave/walweave/pgformat"
	"github.com/walweave/walweave/verify"
)

// VerifyOptions limits Verify to a range of segments (by segment number, any timeline).
type VerifyOptions struct {
	// From and To are segment file names; "" means the archive's first and last segment.
	From, To string
}

// VerifyReport is what Verify found.
type VerifyReport struct {
	Segments    int      // complete segments checked
	First, Last string   // the first and last segment checked
	Timelines   []uint32 // timelines of the segments checked
	Records     int64    // WAL records whose CRC was verified
	SegmentSize int
	// Abandoned are the segments (file names, checked like the others) of an older timeline
	// from where the newest timeline's history says that timeline ended: WAL of a branch
	// that a failover abandoned (an old primary went on writing after a standby that had not
	// received it all was promoted). Recovery to the latest timeline does not read them; they
	// are no problem, and no hole among them is.
	Abandoned []string
	// Problems, the first missing or bad segment first (history files after the segments).
	Problems []verify.Problem
}

// OK says whether no problem was found.
func (r *VerifyReport) OK() bool { return len(r.Problems) == 0 }

// ErrProblems is wrapped by VerifyReport.Err.
var ErrProblems = errors.New("the WAL archive has problems")

// Err returns nil, or an error naming the first problem.
func (r *VerifyReport) Err() error {
	if r.OK() {
		return nil
	}
	return fmt.Errorf("walarchive: %w: %s", ErrProblems, r.Problems[0])
}

type archFile struct {
	FileName
	name  string // the file's name in the directory
	segno uint64
}

// Verify checks an archive directory: every complete segment (decompressed) through
// verify.WALArchive (page headers: magic, timeline, addresses, the long header; the record
// chain of each timeline with every record's CRC), no segment missing between the first and the
// last, and the history files: one for every timeline above 1 among the segments, parseable,
// listing the older timelines of the archive with switch points after their segments. Partial
// segments are not checked. Segments of an older timeline past where the newest timeline's
// history ends it (the branch a failover abandoned) are listed in VerifyReport.Abandoned rather
// than as problems; the segment where each timeline begins must be there. The error is for a
// directory that cannot be read or holds no segment; problems are in the report.
func Verify(ctx context.Context, dir string, opts VerifyOptions) (*VerifyReport, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("walarchive: %w", err)
	}
	var segs []archFile
	history := map[uint32]string{}
	seen := map[string]bool{}
	for _, e := range ents {
		f, ok := ParseFileName(e.Name())
		if !ok || !e.Type().IsRegular() {
			continue
		}
		switch f.Kind {
		case KindHistory:
			history[f.Timeline] = e.Name()
		case KindSegment:
			if seen[f.Base] {
				continue // NAME and NAME.zst: one is enough
			}
			seen[f.Base] = true
			segs = append(segs, archFile{FileName: f, name: e.Name()})
		}
	}
	if len(segs) == 0 {
		return nil, fmt.Errorf("walarchive: %s holds no complete WAL segment", dir)
	}
	// The segment size comes from the first segment's long page header.
	first, err := readArchiveFile(dir, segs[0].name)
	if err != nil {
		return nil, err
	}
	if len(first) < 40 {
		return nil, fmt.Errorf("walarchive: %s: %w: too short for a WAL segment", segs[0].name, ErrCorrupt)
	}
	segSize, ok := segmentSizeOf(first)
	if !ok {
		segSize = len(first)
	}
	if !pgformat.ValidWALSegmentSize(segSize) {
		return nil, fmt.Errorf("walarchive: %s: %w: no valid WAL segment size in its header", segs[0].name, ErrCorrupt)
	}
	rep := &VerifyReport{SegmentSize: segSize}
	var fromNo, toNo uint64 = 0, ^uint64(0)
	for _, lim := range []struct {
		s string
		p *uint64
	}{{opts.From, &fromNo}, {opts.To, &toNo}} {
		if lim.s == "" {
			continue
		}
		f, ok := ParseFileName(lim.s)
		no, ok2 := f.SegNo(segSize)
		if !ok || f.Kind != KindSegment || !ok2 {
			return nil, fmt.Errorf("walarchive: %q is not a WAL segment name", lim.s)
		}
		*lim.p = no
	}
	kept := segs[:0]
	for _, s := range segs {
		no, ok := s.SegNo(segSize)
		if !ok {
			rep.Problems = append(rep.Problems, verify.Problem{Path: s.name, Reason: fmt.Sprintf("not a valid segment name for a %d byte segment size", segSize)})
			continue
		}
		if no < fromNo || no > toNo {
			continue
		}
		s.segno = no
		kept = append(kept, s)
	}
	segs = kept
	if len(segs) == 0 {
		return nil, fmt.Errorf("walarchive: no complete WAL segment between %q and %q", opts.From, opts.To)
	}
	sort.Slice(segs, func(i, j int) bool {
		if segs[i].segno != segs[j].segno {
			return segs[i].segno < segs[j].segno
		}
		return segs[i].Timeline < segs[j].Timeline
	})
	rep.First, rep.Last = segs[0].Base, segs[len(segs)-1].Base
	type segProblem struct {
		no  uint64
		tli uint32
		p   verify.Problem
	}
	var probs []segProblem
	// The newest timeline's history: where each older timeline ended on its branch.
	newest := uint32(0)
	for _, s := range segs {
		newest = max(newest, s.Timeline)
	}
	ends := map[uint32]pgformat.LSN{}
	if name, ok := history[newest]; ok && newest > 1 {
		if b, err := os.ReadFile(filepath.Join(dir, name)); err == nil {
			if h, err := pgformat.ParseHistory(b); err == nil {
				for _, e := range h {
					ends[e.Timeline] = e.SwitchLSN
				}
			}
		}
	}
	abandoned := func(s archFile) bool {
		end, ok := ends[s.Timeline]
		return ok && s.Timeline < newest && pgformat.LSN(s.segno*uint64(segSize)) >= end
	}
	onBranch := make([]archFile, 0, len(segs))
	for _, s := range segs {
		if abandoned(s) {
			rep.Abandoned = append(rep.Abandoned, s.Base)
		} else {
			onBranch = append(onBranch, s)
		}
	}
	// Holes (on the newest timeline's branch).
	prev := onBranch[0]
	for _, s := range onBranch[1:] {
		for no := prev.segno + 1; no < s.segno; no++ {
			name := pgformat.WALSegmentFileName(prev.Timeline, no, segSize)
			probs = append(probs, segProblem{no, prev.Timeline, verify.Problem{Path: name, Reason: "missing WAL segment"}})
		}
		prev = s
	}
	// Content.
	chk := verify.NewWALArchive()
	tlis := map[uint32]bool{}
	for _, s := range segs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		tlis[s.Timeline] = true
		data, err := readArchiveFile(dir, s.name)
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				return nil, err
			}
			probs = append(probs, segProblem{s.segno, s.Timeline, verify.Problem{Path: s.name, Reason: err.Error()}})
			continue
		}
		chk.Segment(s.Base, data)
		rep.Segments++
	}
	wr := chk.Finish()
	rep.Records = wr.WALRecords
	for _, p := range wr.Problems {
		f, ok := ParseFileName(p.Path)
		no, _ := f.SegNo(segSize)
		if !ok {
			no = ^uint64(0)
		}
		probs = append(probs, segProblem{no, f.Timeline, p})
	}
	sort.SliceStable(probs, func(i, j int) bool {
		if probs[i].no != probs[j].no {
			return probs[i].no < probs[j].no
		}
		return probs[i].tli < probs[j].tli
	})
	for _, p := range probs {
		rep.Problems = append(rep.Problems, p.p)
	}
	for t := range tlis {
		rep.Timelines = append(rep.Timelines, t)
	}
	sort.Slice(rep.Timelines, func(i, j int) bool { return rep.Timelines[i] < rep.Timelines[j] })
	// History files.
	for _, t := range rep.Timelines {
		if t <= 1 {
			continue
		}
		name := pgformat.HistoryFileName(t)
		if _, ok := history[t]; !ok {
			rep.Problems = append(rep.Problems, verify.Problem{Path: name, Reason: fmt.Sprintf("missing timeline history file (the archive has segments of timeline %d)", t)})
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("walarchive: %w", err)
		}
		h, err := pgformat.ParseHistory(b)
		if err != nil {
			rep.Problems = append(rep.Problems, verify.Problem{Path: name, Reason: "invalid timeline history file: " + err.Error()})
			continue
		}
		switches := map[uint32]pgformat.LSN{}
		for _, e := range h {
			switches[e.Timeline] = e.SwitchLSN
		}
		for _, s := range segs {
			if s.Timeline >= t {
				continue
			}
			sw, ok := switches[s.Timeline]
			switch {
			case ok && abandoned(s):
				continue
			case !ok:
				rep.Problems = append(rep.Problems, verify.Problem{Path: name, Reason: fmt.Sprintf("does not list timeline %d, which segment %s belongs to", s.Timeline, s.Base)})
			case pgformat.LSN(s.segno*uint64(segSize)) >= sw:
				rep.Problems = append(rep.Problems, verify.Problem{Path: name, Reason: fmt.Sprintf("timeline %d ends at %s, before segment %s of that timeline", s.Timeline, sw, s.Base)})
			default:
				continue
			}
			break
		}
		// The segment where t begins (the older timeline's end; a copy of the older timeline's
		// segment up to there): recovery reads t's, never the older timeline's.
		if len(h) == 0 {
			continue
		}
		begin := h[len(h)-1].SwitchLSN
		beginNo := uint64(begin) / uint64(segSize)
		if beginNo < segs[0].segno || beginNo > segs[len(segs)-1].segno {
			continue
		}
		found := false
		for _, s := range segs {
			if s.Timeline == t && s.segno == beginNo {
				found = true
				break
			}
		}
		if !found {
			rep.Problems = append(rep.Problems, verify.Problem{Path: pgformat.WALSegmentFileName(t, beginNo, segSize),
				Reason: fmt.Sprintf("missing WAL segment (timeline %d begins in it, at %s)", t, begin)})
		}
	}
	return rep, nil
}

// readArchiveFile reads and decompresses a file of the archive directory.
func readArchiveFile(dir, name string) ([]byte, error) {
	raw, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return nil, fmt.Errorf("walarchive: %w", err)
	}
	data, err := decode(raw, maxFile)
	if err != nil {
		return nil, fmt.Errorf("walarchive: %s: %w", name, err)
	}
	return data, nil
}
