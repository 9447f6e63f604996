package main

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/walweave/walweave/internal/humanize"
	"github.com/walweave/walweave/mux"
)

// progressPrinter shows backup progress on stderr: one live line on a terminal, a plain line
// every plainEvery otherwise. While the server runs the start checkpoint (no byte flows, a
// spread checkpoint can take minutes), it shows the time waited, refreshed by a ticker.
type progressPrinter struct {
	mu        sync.Mutex
	w         io.Writer
	tty       bool
	spread    bool // the checkpoint is spread: say that -c fast avoids the wait
	last      time.Time
	lastBytes int64
	lastP     mux.Progress
	shown     bool

	waitStart   time.Time     // when the checkpoint wait began
	stopTicker  chan struct{} // closes the checkpoint ticker
	streamStart time.Duration // Elapsed when data started to flow
	streaming   bool
	tick        time.Duration // checkpoint refresh period (tests shorten it)
}

const plainEvery = 10 * time.Second

func newProgressPrinter(w io.Writer, tty, spread bool) *progressPrinter {
	p := &progressPrinter{w: w, tty: tty, spread: spread, tick: time.Second}
	if !tty {
		p.tick = plainEvery
	}
	return p
}

func (p *progressPrinter) update(pr mux.Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	phaseChanged := pr.Phase != p.lastP.Phase
	p.lastP = pr
	if phaseChanged {
		p.stopWaitLocked()
		switch pr.Phase {
		case mux.PhaseCheckpoint:
			p.waitStart = now
			p.stopTicker = make(chan struct{})
			go p.ticker(p.stopTicker, p.tick)
			p.printLocked(p.waitLine(now))
			return
		case mux.PhaseConnecting, mux.PhaseFailed:
		default:
			if !p.streaming {
				p.streaming, p.streamStart = true, pr.Elapsed
			}
		}
	}
	if pr.Phase == mux.PhaseCheckpoint {
		return // the ticker shows the wait
	}
	if !p.tty && !phaseChanged && now.Sub(p.last) < plainEvery {
		return
	}
	rate := "-"
	switch {
	case pr.Phase == mux.PhaseDone && pr.Elapsed > p.streamStart:
		// The whole backup's rate, from the first byte: not the manifest's last milliseconds,
		// and not counting the checkpoint wait.
		rate = humanize.Bytes(int64(float64(pr.BytesWritten)/(pr.Elapsed-p.streamStart).Seconds())) + "/s average"
	case !p.last.IsZero() && now.After(p.last):
		r := float64(pr.BytesWritten-p.lastBytes) / now.Sub(p.last).Seconds()
		rate = humanize.Bytes(int64(r)) + "/s"
	}
	p.last, p.lastBytes = now, pr.BytesWritten
	data := humanize.Bytes(pr.BytesDone) + " data"
	if pr.TotalBytes > 0 {
		data = fmt.Sprintf("%s of %s data (%d%%)", humanize.Bytes(pr.BytesDone), humanize.Bytes(pr.TotalBytes), pr.BytesDone*100/pr.TotalBytes)
	}
	p.printLocked(fmt.Sprintf("%s: %s, %s written, %s, %s, ring %d/%d",
		pr.Phase, data, humanize.Bytes(pr.BytesWritten), rate, plural(int(pr.WALSegments), "WAL segment"), pr.RingOccupancy, pr.RingCapacity))
}

// waitLine describes the checkpoint wait so far.
func (p *progressPrinter) waitLine(now time.Time) string {
	line := fmt.Sprintf("%s: %s so far, the server writes its start checkpoint before the first byte", mux.PhaseCheckpoint, now.Sub(p.waitStart).Round(time.Second))
	if p.spread {
		line += " (spread checkpoint: -c fast avoids the wait)"
	}
	return line
}

// ticker refreshes the checkpoint line until stop is closed.
func (p *progressPrinter) ticker(stop chan struct{}, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			p.mu.Lock()
			select {
			case <-stop:
			default:
				p.printLocked(p.waitLine(now))
			}
			p.mu.Unlock()
		}
	}
}

func (p *progressPrinter) stopWaitLocked() {
	if p.stopTicker != nil {
		close(p.stopTicker)
		p.stopTicker = nil
	}
}

func (p *progressPrinter) printLocked(line string) {
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
	p.stopWaitLocked()
	if p.tty && p.shown {
		fmt.Fprintln(p.w)
	}
}

// readProgress shows a restore's progress on stderr (-P): the stream bytes read so far (of
// each stream of a chain: which one is being read), and the rate, on one live line on a
// terminal, a plain line every plainEvery otherwise.
type readProgress struct {
	w       io.Writer
	tty     bool
	names   []string
	counts  []atomic.Int64
	current atomic.Int32
	start   time.Time
	stop    chan struct{}
	done    chan struct{}
}

// newReadProgress starts showing the progress of reading the named streams, refreshed every
// second on a terminal and every plainEvery otherwise, until finish.
func newReadProgress(w io.Writer, tty bool, names []string) *readProgress {
	p := &readProgress{w: w, tty: tty, names: names, counts: make([]atomic.Int64, len(names)),
		start: time.Now(), stop: make(chan struct{}), done: make(chan struct{})}
	every := time.Second
	if !tty {
		every = plainEvery
	}
	go func() {
		defer close(p.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				p.print(false)
			}
		}
	}()
	return p
}

// reader counts what is read from r as stream i.
func (p *readProgress) reader(i int, r io.Reader) io.Reader {
	return &progressReader{r: r, p: p, i: i}
}

type progressReader struct {
	r io.Reader
	p *readProgress
	i int
}

func (r *progressReader) Read(b []byte) (int, error) {
	n, err := r.r.Read(b)
	if n > 0 {
		r.p.counts[r.i].Add(int64(n))
		r.p.current.Store(int32(r.i))
	}
	return n, err
}

func (p *readProgress) line(final bool) string {
	var total int64
	for i := range p.counts {
		total += p.counts[i].Load()
	}
	el := time.Since(p.start)
	rate := "-"
	if s := el.Seconds(); s > 0 {
		rate = humanize.Bytes(int64(float64(total)/s)) + "/s"
	}
	what := "restore"
	if final {
		what = "restore read"
	}
	line := fmt.Sprintf("%s: %s of stream read, %s, %s", what, humanize.Bytes(total), rate, el.Round(time.Second))
	if len(p.names) > 1 {
		i := int(p.current.Load())
		line += fmt.Sprintf(", backup %d of %d (%s)", i+1, len(p.names), p.names[i])
	}
	return line
}

func (p *readProgress) print(final bool) {
	line := p.line(final)
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", line)
		if final {
			fmt.Fprintln(p.w)
		}
	} else {
		fmt.Fprintln(p.w, "walweave:", line)
	}
}

// finish stops the refresh and prints the last line.
func (p *readProgress) finish() {
	close(p.stop)
	<-p.done
	p.print(true)
}
