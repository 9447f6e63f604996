package main

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/walweave/walweave/internal/humanize"
	"github.com/walweave/walweave/mux"
)

// progressPrinter shows backup progress on stderr: one live line on a terminal, a plain line
// every plainEvery otherwise.
type progressPrinter struct {
	mu        sync.Mutex
	w         io.Writer
	tty       bool
	last      time.Time
	lastBytes int64
	lastP     mux.Progress
	shown     bool
}

const plainEvery = 10 * time.Second

func newProgressPrinter(w io.Writer, tty bool) *progressPrinter {
	return &progressPrinter{w: w, tty: tty}
}

func (p *progressPrinter) update(pr mux.Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	phaseChanged := pr.Phase != p.lastP.Phase
	p.lastP = pr
	if !p.tty && !phaseChanged && now.Sub(p.last) < plainEvery {
		return
	}
	rate := "-"
	switch {
	case pr.Phase == mux.PhaseDone && pr.Elapsed > 0:
		// The last interval is the manifest's few milliseconds: show the whole backup's rate.
		rate = humanize.Bytes(int64(float64(pr.BytesWritten)/pr.Elapsed.Seconds())) + "/s average"
	case !p.last.IsZero() && now.After(p.last):
		r := float64(pr.BytesWritten-p.lastBytes) / now.Sub(p.last).Seconds()
		rate = humanize.Bytes(int64(r)) + "/s"
	}
	p.last, p.lastBytes = now, pr.BytesWritten
	data := humanize.Bytes(pr.BytesDone) + " data"
	if pr.TotalBytes > 0 {
		data = fmt.Sprintf("%s of %s data (%d%%)", humanize.Bytes(pr.BytesDone), humanize.Bytes(pr.TotalBytes), pr.BytesDone*100/pr.TotalBytes)
	}
	line := fmt.Sprintf("%s: %s, %s written, %s, %d WAL segments, ring %d/%d",
		pr.Phase, data, humanize.Bytes(pr.BytesWritten), rate, pr.WALSegments, pr.RingOccupancy, pr.RingCapacity)
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", line)
		p.shown = true
	} else {
		fmt.Fprintln(p.w, "walweave:", line)
	}
}

func (p *progressPrinter) finish(ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty && p.shown {
		fmt.Fprintln(p.w)
	}
}
