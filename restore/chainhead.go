package restore

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"strings"

	"github.com/walweave/walweave/pgformat"
	"github.com/walweave/walweave/verify"
)

// MaxChainHead bounds what Chain reads ahead of each stream, before writing anything, to find
// its backup_label: the members before it (tablespaces, WAL segments woven in early) are kept
// in memory and the stream is then read from its start as usual (still read once). A stream
// whose backup_label is further (large tablespaces; a full backup taken with --jobs, whose
// backup_label comes last) is checked when it is applied, as before.
const MaxChainHead = 32 << 20

// errHeadFull ends a head scan that reached MaxChainHead.
var errHeadFull = errors.New("restore: stream head limit reached")

// headRecorder keeps every byte read from r, up to limit.
type headRecorder struct {
	r     io.Reader
	buf   bytes.Buffer
	limit int
}

func (h *headRecorder) Read(p []byte) (int, error) {
	room := h.limit - h.buf.Len()
	if room <= 0 {
		return 0, errHeadFull
	}
	if len(p) > room {
		p = p[:room]
	}
	n, err := h.r.Read(p)
	h.buf.Write(p[:n])
	return n, err
}

// peekLabel reads r's head up to its backup_label (only tablespace and WAL members may come
// before it) and returns the label (nil when it is not in the head), the cluster it is of
// (from the label's PAX comment, zero when the stream has none: a stream of an older walweave
// or another tool) and a reader that yields the whole stream from its start.
func peekLabel(r io.Reader, limit int) (*pgformat.BackupLabel, pgformat.BackupOrigin, io.Reader) {
	rec := &headRecorder{r: r, limit: limit}
	var origin pgformat.BackupOrigin
	label := func() *pgformat.BackupLabel {
		tr := tar.NewReader(rec)
		for {
			h, err := tr.Next()
			if err != nil {
				return nil
			}
			name := strings.TrimPrefix(h.Name, "./")
			switch {
			case name == "backup_label" && h.Typeflag == tar.TypeReg:
				if h.Size > pgformat.MaxBackupLabelSize {
					return nil
				}
				raw, err := io.ReadAll(tr)
				if err != nil {
					return nil
				}
				l, err := pgformat.ParseBackupLabel(raw)
				if err != nil {
					return nil
				}
				origin, _ = pgformat.ParseBackupOrigin(h.PAXRecords["comment"])
				return l
			case strings.HasPrefix(name, "pg_tblspc/"), strings.HasPrefix(name, "pg_wal/"):
				continue
			default:
				return nil // the main directory started without it: backup_label comes later
			}
		}
	}()
	return label, origin, io.MultiReader(bytes.NewReader(rec.buf.Bytes()), r)
}

// checkChainHeads reads the head of every stream (up to MaxChainHead each) for its
// backup_label and refuses, before anything is written, a chain that does not link: an
// incremental backup first, a full backup after the first, backups of another major version
// or another cluster (from backup_label's PAX comment, pgformat.BackupOrigin), backups out of
// order or with one missing between them, in verify.CheckChain's words. The streams' readers
// are replaced by ones that still yield each stream from its start. Links it cannot see (a
// backup_label further in, a stream without the comment) are left to the checks made while
// the chain is applied, which compare the system identifiers in global/pg_control, near each
// stream's end.
func checkChainHeads(streams []ChainStream, limit int) error {
	links := make([]*verify.Report, len(streams))
	names := make([]string, len(streams))
	for i := range streams {
		names[i] = streams[i].Name
		l, origin, r := peekLabel(streams[i].R, limit)
		streams[i].R = r
		if l != nil {
			links[i] = linkOf(l, origin.SystemID)
			links[i].PGVersion = origin.Major()
		}
	}
	if links[0] != nil && links[0].Incremental {
		return verify.CheckChain(names[:1], links[:1])
	}
	for i := 1; i < len(links); i++ {
		if links[i] == nil {
			return nil // the rest is checked while applying
		}
		if !links[i].Incremental {
			return verify.CheckChain(names[:i+1], fullFirst(links[:i+1]))
		}
	}
	// Every incremental backup's label is known; the full backup's start may not be (its
	// backup_label comes last with --jobs): then its link to the first incremental is checked
	// when that one is applied, and the others here.
	return verify.CheckChain(names, fullFirst(links))
}

// fullFirst stands in for an unknown full backup's label: a full backup whose start is what
// the next backup was taken from (that link is checked later, when it is applied).
func fullFirst(links []*verify.Report) []*verify.Report {
	if links[0] != nil || len(links) < 2 || links[1] == nil {
		return links
	}
	out := append([]*verify.Report(nil), links...)
	out[0] = &verify.Report{StartLSN: links[1].IncrementalFromLSN, StartTimeline: links[1].IncrementalFromTLI}
	return out
}
