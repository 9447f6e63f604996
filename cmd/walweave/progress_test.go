package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/walweave/walweave/internal/pgtest"
	"github.com/walweave/walweave/mux"
)

// Plain (non-terminal) output: a line at every phase change; the last one gives the whole
// backup's average rate, not the rate of the manifest's last few milliseconds.
func TestProgressPrinterPlain(t *testing.T) {
	var out bytes.Buffer
	p := newProgressPrinter(&out, false, false)
	p.update(mux.Progress{Phase: mux.PhaseStreaming, TotalBytes: 100 << 20})
	p.update(mux.Progress{Phase: mux.PhaseStreaming, BytesDone: 10 << 20, BytesWritten: 10 << 20, TotalBytes: 100 << 20}) // same phase: not shown
	p.update(mux.Progress{Phase: mux.PhaseWritingTail, BytesDone: 100 << 20, BytesWritten: 200 << 20, TotalBytes: 100 << 20, WALSegments: 3})
	p.update(mux.Progress{Phase: mux.PhaseDone, BytesDone: 100 << 20, BytesWritten: 200 << 20, TotalBytes: 100 << 20, WALSegments: 3, Elapsed: 2 * time.Second})
	p.finish(true)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines, want 3:\n%s", len(lines), out.String())
	}
	if !strings.Contains(lines[1], "writing manifest: 100.0 MiB of 100.0 MiB data (100%), 200.0 MiB written") {
		t.Errorf("line 2: %q", lines[1])
	}
	if !strings.Contains(lines[2], "done:") || !strings.Contains(lines[2], "100.0 MiB/s average") || !strings.Contains(lines[2], "3 WAL segments") {
		t.Errorf("last line: %q", lines[2])
	}
}

// While the server runs the start checkpoint, the line shows the time waited and
// that -c fast avoids it; the average at the end leaves the wait out.
func TestProgressCheckpointWait(t *testing.T) {
	var out pgtest.SyncBuffer
	p := newProgressPrinter(&out, false, true)
	p.tick = 20 * time.Millisecond
	p.update(mux.Progress{Phase: mux.PhaseConnecting})
	p.update(mux.Progress{Phase: mux.PhaseCheckpoint, Elapsed: 10 * time.Millisecond})
	time.Sleep(1100 * time.Millisecond)
	p.update(mux.Progress{Phase: mux.PhaseStreaming, Elapsed: 8 * time.Second})
	p.update(mux.Progress{Phase: mux.PhaseDone, BytesWritten: 200 << 20, Elapsed: 10 * time.Second})
	p.finish(true)
	s := out.String()
	if !strings.Contains(s, "waiting for checkpoint: 1s so far") || !strings.Contains(s, "-c fast avoids the wait") {
		t.Fatalf("no checkpoint wait shown:\n%s", s)
	}
	if n := strings.Count(s, "so far"); n < 10 {
		t.Fatalf("the wait line was refreshed %d times:\n%s", n, s)
	}
	if !strings.Contains(s, "100.0 MiB/s average") {
		t.Fatalf("the average counts the wait:\n%s", s)
	}
}
