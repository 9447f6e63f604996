package walstream

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/walweave/walweave/internal/pgrepl"
	"github.com/walweave/walweave/internal/pgtest"
	"github.com/walweave/walweave/pgformat"
	"github.com/walweave/walweave/ringbuf"
)

// baseSettings keep every segment a test streams on the server (wal_keep_size) and spare the
// disk the zero-filling of new segments.
func baseSettings(extra map[string]string) map[string]string {
	s := map[string]string{"wal_keep_size": "2GB", "wal_init_zero": "off", "max_wal_size": "4GB"}
	for k, v := range extra {
		s[k] = v
	}
	return s
}

// shared is the package's cluster (TestMain); tests that need other settings start their own.
var shared *pgtest.Cluster

func TestMain(m *testing.M) {
	c, err := pgtest.MainOrSkip(pgtest.Options{Settings: baseSettings(nil)})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	shared = c
	code := m.Run()
	if c != nil {
		c.Close()
	}
	if stallCluster != nil {
		stallCluster.Close()
	}
	os.Exit(code)
}

func sharedCluster(t testing.TB) *pgtest.Cluster {
	t.Helper()
	pgtest.Require(t)
	if shared == nil {
		t.Skip("no PostgreSQL server")
	}
	smallOnce.Do(func() { shared.Exec(t, "create table small (i int)") })
	return shared
}

var smallOnce sync.Once

var pgbenchOnce sync.Once

// sharedWithPgbench returns the shared cluster with pgbench tables.
func sharedWithPgbench(t testing.TB) *pgtest.Cluster {
	c := sharedCluster(t)
	pgbenchOnce.Do(func() { c.PgbenchInit(t, 1) })
	return c
}

func connCfg(t testing.TB, c *pgtest.Cluster, slot string, status time.Duration) Config {
	t.Helper()
	cc, err := pgrepl.ParseConfig(c.DSN())
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{ConnConfig: cc, SlotName: slot, StatusInterval: status}
	if os.Getenv("WALSTREAM_DEBUG") != "" {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return cfg
}

func connectT(t testing.TB, cfg Config) *Receiver {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := Connect(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func lsnOf(t testing.TB, c *pgtest.Cluster, sql string) pgformat.LSN {
	t.Helper()
	l, err := pgformat.ParseLSN(c.QueryValue(t, sql))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// switcher runs pg_switch_wal every interval until stopped.
func switcher(c *pgtest.Cluster, every time.Duration) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				_ = c.ExecContext(ctx, "select pg_switch_wal()")
			}
		}
	}()
	return func() { cancel(); <-done }
}

// taken is what the collector saw of one segment.
type taken struct {
	Kind      ringbuf.Kind
	Name      string
	Timeline  uint32
	StartLSN  pgformat.LSN
	Size      int
	FirstDiff int // first offset differing from the server's file at take time; -1: identical; -2: no file
	LastNZ    int // last non-zero offset; -1: all zeros
	File      string
}

// collector drains a ring like the backup writer and compares every segment with the server's
// own file under dataDir/pg_wal.
type collector struct {
	ring    *ringbuf.Ring
	walDir  string
	gate    chan struct{} // the collector waits for it to be closed before taking anything
	mu      sync.Mutex
	segs    []taken
	history map[string][]byte // history files
	err     error
	done    chan struct{}
}

func newCollector(ring *ringbuf.Ring, dataDir string, paused bool) *collector {
	c := &collector{ring: ring, walDir: filepath.Join(dataDir, "pg_wal"), gate: make(chan struct{}),
		history: map[string][]byte{}, done: make(chan struct{})}
	if !paused {
		close(c.gate)
	}
	go c.run()
	return c
}

func (c *collector) resume() { close(c.gate) }

func (c *collector) run() {
	defer close(c.done)
	<-c.gate
	ctx := context.Background()
	for {
		seg, err := c.ring.Take(ctx)
		if err != nil {
			if err != io.EOF {
				c.mu.Lock()
				c.err = err
				c.mu.Unlock()
			}
			return
		}
		c.record(seg)
		c.ring.Release(seg)
	}
}

func (c *collector) record(seg *ringbuf.Segment) {
	tk := taken{Kind: seg.Kind, Name: seg.Name, Timeline: seg.Timeline, StartLSN: pgformat.LSN(seg.StartLSN), Size: len(seg.Data)}
	if seg.Kind == ringbuf.KindHistory {
		c.mu.Lock()
		c.history[seg.Name] = bytes.Clone(seg.Data)
		c.segs = append(c.segs, tk)
		c.mu.Unlock()
		return
	}
	tk.LastNZ = lastNonZero(seg.Data)
	tk.FirstDiff = -2
	for _, name := range []string{seg.Name, seg.Name + ".partial"} {
		file, err := os.ReadFile(filepath.Join(c.walDir, name))
		if err != nil {
			continue
		}
		tk.File = name
		tk.FirstDiff = firstDiff(seg.Data, file)
		break
	}
	c.mu.Lock()
	c.segs = append(c.segs, tk)
	c.mu.Unlock()
}

// firstDiff returns the first offset where a and b differ, -1 if they are equal. It compares
// in blocks (bytes.Equal is fast even under the race detector).
func firstDiff(a, b []byte) int {
	if bytes.Equal(a, b) {
		return -1
	}
	n := min(len(a), len(b))
	const block = 4096
	i := 0
	for i+block <= n && bytes.Equal(a[i:i+block], b[i:i+block]) {
		i += block
	}
	for ; i < n; i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

var zeroBlock [4096]byte

// lastNonZero returns the offset of the last non-zero byte of b, -1 if b is all zeros.
func lastNonZero(b []byte) int {
	i := len(b)
	for i >= len(zeroBlock) && bytes.Equal(b[i-len(zeroBlock):i], zeroBlock[:]) {
		i -= len(zeroBlock)
	}
	for i--; i >= 0; i-- {
		if b[i] != 0 {
			return i
		}
	}
	return -1
}

// wait waits for the collector to end (the ring closed) and returns what it saw.
func (c *collector) wait(t testing.TB, timeout time.Duration) ([]taken, error) {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(timeout):
		t.Fatalf("collector still running after %v", timeout)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]taken(nil), c.segs...), c.err
}

func (c *collector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.segs)
}

// checkSegments checks that the WAL segments of one timeline are consecutive from start, named
// right, and identical to the server's files, except the last one, which must hold the server's
// bytes up to end and zeros after it.
func checkSegments(t testing.TB, segs []taken, tli uint32, start, end pgformat.LSN, segSize int) {
	t.Helper()
	if len(segs) == 0 {
		t.Fatal("no segments")
	}
	want := start.SegmentStart(segSize)
	for i, s := range segs {
		if s.Kind != ringbuf.KindSegment || s.Timeline != tli || s.StartLSN != want ||
			s.Name != pgformat.WALFileName(tli, want, segSize) || s.Size != segSize {
			t.Fatalf("segment %d: %+v, want %s on timeline %d", i, s, pgformat.WALFileName(tli, want, segSize), tli)
		}
		if i < len(segs)-1 && s.FirstDiff != -1 {
			t.Fatalf("segment %s differs from the server's file at offset %d", s.Name, s.FirstDiff)
		}
		want += pgformat.LSN(segSize)
	}
	lastSeg := segs[len(segs)-1]
	if wantLast := (end - 1).SegmentStart(segSize); lastSeg.StartLSN != wantLast {
		t.Fatalf("last segment %s starts at %s, want the one holding %s", lastSeg.Name, lastSeg.StartLSN, end-1)
	}
}

// checkPadded checks a final segment against the server's file as the collector saw it: equal
// up to endOff, zeros after it.
func checkPadded(t testing.TB, tk taken, endOff int) {
	t.Helper()
	if tk.FirstDiff == -2 {
		t.Fatalf("no server file for %s", tk.Name)
	}
	if tk.FirstDiff != -1 && tk.FirstDiff < endOff {
		t.Fatalf("last segment %s differs from the server's %s at %#x, before the end offset %#x", tk.Name, tk.File, tk.FirstDiff, endOff)
	}
	if tk.LastNZ >= endOff {
		t.Fatalf("last segment %s has a non-zero byte at %#x, after the end offset %#x", tk.Name, tk.LastNZ, endOff)
	}
}

// streamResult runs Stream in a goroutine.
type streamResult struct {
	done chan struct{}
	err  error
	at   time.Time
}

func startStream(ctx context.Context, r *Receiver, ring *ringbuf.Ring, start pgformat.LSN, tli uint32) *streamResult {
	s := &streamResult{done: make(chan struct{})}
	go func() {
		s.err = r.Stream(ctx, ring, start, tli, r.SystemID())
		s.at = time.Now()
		close(s.done)
	}()
	return s
}

func (s *streamResult) wait(t testing.TB, timeout time.Duration) error {
	t.Helper()
	select {
	case <-s.done:
		return s.err
	case <-time.After(timeout):
		t.Fatalf("Stream did not return within %v", timeout)
		return nil
	}
}

func waitUntil(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func slotExists(t testing.TB, c *pgtest.Cluster, name string) bool {
	return c.QueryValue(t, "select count(*) from pg_replication_slots where slot_name = $1", name) != "0"
}

func waitSlotGone(t testing.TB, c *pgtest.Cluster, name string) {
	t.Helper()
	waitUntil(t, 10*time.Second, "slot "+name+" to go", func() bool { return !slotExists(t, c, name) })
}
