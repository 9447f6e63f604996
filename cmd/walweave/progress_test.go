package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

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
