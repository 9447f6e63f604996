package walarchive

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/walweave/walweave/internal/pgrepl"
	"github.com/walweave/walweave/internal/pgtest"
	"github.com/walweave/walweave/pgformat"
)

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(helperMain())
	}
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/Shopify/toxiproxy/v2/toxics.(*ToxicStub).Run"),
		goleak.IgnoreAnyFunction("github.com/Shopify/toxiproxy/v2.(*ToxicLink).pipe"),
		goleak.IgnoreAnyFunction("github.com/Shopify/toxiproxy/v2.(*ToxicLink).read"),
		goleak.IgnoreAnyFunction("github.com/Shopify/toxiproxy/v2.(*ToxicLink).write"))
}

// settings: 1 MB segments are quick to fill; every segment stays in pg_wal to compare with.
func settings(extra map[string]string) pgtest.Options {
	s := map[string]string{"wal_keep_size": "4GB", "max_wal_size": "4GB", "wal_sender_timeout": "10s"}
	for k, v := range extra {
		s[k] = v
	}
	return pgtest.Options{Settings: s, WALSegmentSizeMB: 1}
}

func newCluster(t *testing.T, extra map[string]string) *pgtest.Cluster {
	t.Helper()
	c := pgtest.Start(t, settings(extra))
	c.Exec(t, "create table filler (i int, s text)")
	return c
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("WALARCHIVE_DEBUG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return nil
}

func baseConfig(t testing.TB, dsn, slot string, sink Sink) Config {
	t.Helper()
	cc, err := pgrepl.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return Config{ConnConfig: cc, Slot: slot, CreateSlot: true, Sink: sink, StatusInterval: 200 * time.Millisecond,
		RetryMin: 100 * time.Millisecond, RetryMax: time.Second, Logger: testLogger(t)}
}

// running is an Archiver's Run on a goroutine.
type running struct {
	a      *Archiver
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, cfg Config) *running {
	t.Helper()
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{a: a, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- a.Run(ctx) }()
	t.Cleanup(func() { r.stop() })
	return r
}

func (r *running) stop() error {
	r.cancel()
	err, ok := <-r.done
	if ok {
		close(r.done)
	}
	return err
}

// writeWAL writes about mb MB of WAL.
func writeWAL(t testing.TB, c *pgtest.Cluster, mb int) {
	t.Helper()
	c.Exec(t, fmt.Sprintf("insert into filler select g, repeat(md5(g::text), 4) from generate_series(1, %d) g", mb*5000))
}

func currentLSN(t testing.TB, c *pgtest.Cluster) pgformat.LSN {
	t.Helper()
	l, err := pgformat.ParseLSN(c.QueryValue(t, "select pg_current_wal_lsn()"))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// waitFlushed waits until the archiver's flush position reaches at least l.
func waitFlushed(t *testing.T, r *running, l pgformat.LSN, limit time.Duration) {
	t.Helper()
	waitStatus(t, r, limit, fmt.Sprintf("flush position to reach %s", l), func(st Status) bool { return st.FlushLSN >= l })
}

// waitStatus polls the archiver's status until done says so, failing the test when the
// archiver ends first or limit passes.
func waitStatus(t *testing.T, r *running, limit time.Duration, what string, done func(Status) bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		st := r.a.Status()
		if done(st) {
			return
		}
		select {
		case err := <-r.done:
			t.Fatalf("archiver ended: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for the archiver's %s (status %+v)", limit, what, st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// slotRestart returns the slot's restart_lsn.
func slotRestart(t testing.TB, c *pgtest.Cluster, slot string) pgformat.LSN {
	t.Helper()
	s := c.QueryValue(t, "select coalesce(restart_lsn::text, '0/0') from pg_replication_slots where slot_name = $1", slot)
	l, err := pgformat.ParseLSN(s)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// compareWithServer checks that every complete segment of the archive is byte-identical to the
// server's pg_wal file of that name, and returns how many there are.
func compareWithServer(t *testing.T, c *pgtest.Cluster, dir string) int {
	t.Helper()
	return compareWithServers(t, dir, func(FileName) *pgtest.Cluster { return c })
}

// compareWithServers is compareWithServer with the server of each file chosen by server (after
// a failover: the old primary's timeline, the new one's).
func compareWithServers(t *testing.T, dir string, server func(FileName) *pgtest.Cluster) int {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		f, ok := ParseFileName(e.Name())
		if !ok || f.Kind == KindPartial {
			if strings.HasPrefix(e.Name(), tmpPrefix) {
				t.Errorf("temporary file %s left in the archive", e.Name())
			}
			continue
		}
		got, err := readArchiveFile(dir, e.Name())
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(filepath.Join(server(f).DataDir, "pg_wal", f.Base))
		if err != nil {
			t.Fatalf("the server has no %s: %v", f.Base, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("archived %s differs from the server's pg_wal/%s", e.Name(), f.Base)
		}
		n++
	}
	return n
}

// flakySink fails while failing is set.
type flakySink struct {
	Sink
	mu      sync.Mutex
	failing bool
	fails   int
}

func (f *flakySink) Store(ctx context.Context, name string, data []byte) error {
	f.mu.Lock()
	failing := f.failing
	if failing {
		f.fails++
	}
	f.mu.Unlock()
	if failing {
		return fmt.Errorf("injected failure storing %s", name)
	}
	return f.Sink.Store(ctx, name, data)
}

func (f *flakySink) set(v bool) {
	f.mu.Lock()
	f.failing = v
	f.mu.Unlock()
}
