package walarchive

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/walweave/walweave/internal/pgtest"
	"github.com/walweave/walweave/pgformat"
)

const helperEnv = "WALARCHIVE_TEST_HELPER"

// helperMain is the test binary run as a separate archiver process (to be SIGKILLed): it archives
// WALARCHIVE_DSN through WALARCHIVE_SLOT into WALARCHIVE_DIR until SIGTERM.
func helperMain() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	sink, err := NewDirSink(os.Getenv("WALARCHIVE_DIR"))
	if err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		return 2
	}
	a, err := New(Config{ConnString: os.Getenv("WALARCHIVE_DSN"), Slot: os.Getenv("WALARCHIVE_SLOT"), CreateSlot: true, Sink: sink,
		Synchronous: os.Getenv("WALARCHIVE_SYNC") != "", StatusInterval: 200 * time.Millisecond,
		RetryMin: 100 * time.Millisecond, RetryMax: time.Second})
	if err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		return 2
	}
	if err := a.Run(ctx); err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		return 1
	}
	return 0
}

// helperProcess starts the test binary as an archiver process.
func helperProcess(t *testing.T, c *pgtest.Cluster, slot, dir string, sync bool) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=1", "WALARCHIVE_DSN="+c.DSN(), "WALARCHIVE_SLOT="+slot, "WALARCHIVE_DIR="+dir)
	if sync {
		cmd.Env = append(cmd.Env, "WALARCHIVE_SYNC=1")
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return cmd
}

// archivedThrough returns the end of the newest complete segment in dir (0: none).
func archivedThrough(t testing.TB, dir string, segSize int) pgformat.LSN {
	t.Helper()
	s, err := NewDirSink(dir)
	if err != nil {
		t.Fatal(err)
	}
	names, err := s.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, no, ok := newestSegment(names, segSize); ok {
		return pgformat.LSN((no + 1) * uint64(segSize))
	}
	return 0
}

// durableEnd is the end of the archive's complete segments plus what the next one's partial
// file holds.
func durableEnd(t testing.TB, dir string) pgformat.LSN {
	t.Helper()
	end := archivedThrough(t, dir, 1<<20)
	if end == 0 {
		return 0
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		f, ok := ParseFileName(e.Name())
		if !ok || f.Kind != KindPartial {
			continue
		}
		if no, ok := f.SegNo(1 << 20); ok && pgformat.LSN(no<<20) == end {
			fi, err := e.Info()
			if err != nil {
				t.Fatal(err)
			}
			return end + pgformat.LSN(fi.Size())
		}
	}
	return end
}

func waitArchived(t *testing.T, dir string, l pgformat.LSN, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for archivedThrough(t, dir, 1<<20) < l {
		if time.Now().After(deadline) {
			t.Fatalf("the archive did not reach %s within %v", l, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func checkVerify(t *testing.T, dir string) *VerifyReport {
	t.Helper()
	rep, err := Verify(context.Background(), dir, VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Fatalf("wal verify: %v", rep.Problems)
	}
	return rep
}

// Every complete segment stored is the server's own, byte for byte, for each compression;
// the slot never passes what is stored; a stop leaves the partial segment and no temporary
// file; a second Run continues where the first stopped.
func TestArchiveMatchesServer(t *testing.T) {
	c := newCluster(t, nil)
	for _, comp := range []string{"none", "zstd", "lz4"} {
		t.Run(comp, func(t *testing.T) {
			dir := t.TempDir()
			sink, err := NewDirSink(dir)
			if err != nil {
				t.Fatal(err)
			}
			cfg := baseConfig(t, c.DSN(), "arch_"+comp, sink)
			if cfg.Compression, err = ParseCompression(comp); err != nil {
				t.Fatal(err)
			}
			r := start(t, cfg)
			for round := 0; round < 2; round++ {
				writeWAL(t, c, 3)
				target := currentLSN(t, c).SegmentStart(1 << 20)
				waitFlushed(t, r, target, time.Minute)
				if rs, st := slotRestart(t, c, cfg.Slot), r.a.Status(); rs > st.FlushLSN {
					t.Fatalf("slot restart_lsn %s is past what was stored (%s)", rs, st.FlushLSN)
				}
				if round == 0 {
					if err := r.stop(); err != nil {
						t.Fatal(err)
					}
					r = start(t, cfg)
				}
			}
			// A little WAL into the next segment: it is in the partial file as it arrives.
			c.Exec(t, "insert into filler values (0, 'partial')")
			end := currentLSN(t, c)
			st := r.a.Status()
			partial := filepath.Join(dir, pgformat.WALFileName(1, end, 1<<20)+".partial")
			waitPartial(t, partial, end, time.Minute)
			if err := r.stop(); err != nil {
				t.Fatal(err)
			}
			checkPartial(t, c, partial, end)
			// No walsender outlives the stop.
			deadline := time.Now().Add(10 * time.Second)
			for c.QueryValue(t, "select count(*) from pg_stat_replication") != "0" {
				if time.Now().After(deadline) {
					t.Fatal("a walsender outlived the archiver's stop")
				}
				time.Sleep(20 * time.Millisecond)
			}
			n := compareWithServer(t, c, dir)
			if n < 4 {
				t.Fatalf("only %d segments archived", n)
			}
			if st.Segments == 0 || st.LastSegment == "" {
				t.Fatalf("status: %+v", st)
			}
			rep := checkVerify(t, dir)
			if rep.Records == 0 {
				t.Fatal("verify checked no record")
			}
		})
	}
}

// SIGKILL of the archiver process, twice, under load: the restarted archiver leaves no hole.
func TestArchiveKillRestart(t *testing.T) {
	c := newCluster(t, nil)
	c.PgbenchInit(t, 1)
	dir := t.TempDir()
	load := c.StartLoad(t, 2)
	for i := 0; i < 3; i++ {
		cmd := helperProcess(t, c, "killme", dir, false)
		target := currentLSN(t, c).SegmentStart(1<<20) + 2<<20
		waitArchived(t, dir, target, 2*time.Minute)
		if i < 2 {
			_ = cmd.Process.Kill()
		} else {
			_ = cmd.Process.Signal(syscall.SIGTERM)
		}
		err := cmd.Wait()
		if i == 2 && err != nil {
			t.Fatalf("archiver after SIGTERM: %v", err)
		}
		if rs, end := slotRestart(t, c, "killme"), durableEnd(t, dir); rs > end {
			t.Fatalf("slot restart_lsn %s is past the archive's end %s", rs, end)
		}
	}
	if err := load.Stop(); err != nil {
		t.Fatal(err)
	}
	compareWithServer(t, c, dir)
	checkVerify(t, dir)
	if n := c.QueryValue(t, "select count(*) from pg_stat_replication"); n != "0" {
		t.Fatalf("%s walsenders left", n)
	}
}

// A failing sink is retried; meanwhile the slot does not move past what was stored; a sink that
// keeps failing ends Run with a SinkError after RetryFor.
func TestArchiveFailingSink(t *testing.T) {
	c := newCluster(t, nil)
	dir := t.TempDir()
	ds, err := NewDirSink(dir)
	if err != nil {
		t.Fatal(err)
	}
	fs := &flakySink{Sink: ds}
	cfg := baseConfig(t, c.DSN(), "flaky", fs)
	cfg.RetryFor = time.Hour
	r := start(t, cfg)
	writeWAL(t, c, 2)
	waitFlushed(t, r, currentLSN(t, c).SegmentStart(1<<20), time.Minute)
	fs.set(true)
	stored := r.a.Status().FlushLSN
	writeWAL(t, c, 4)
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if rs := slotRestart(t, c, "flaky"); rs > stored {
			t.Fatalf("slot restart_lsn %s passed what was stored (%s) while the sink failed", rs, stored)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st := r.a.Status(); !st.SinkFailing || st.StoreRetries == 0 || st.FlushLSN != stored {
		t.Fatalf("status while failing: %+v", st)
	}
	fs.set(false)
	waitFlushed(t, r, currentLSN(t, c).SegmentStart(1<<20), time.Minute)
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	compareWithServer(t, c, dir)
	checkVerify(t, dir)

	// Failing for good.
	fs.set(true)
	cfg.RetryFor = 700 * time.Millisecond
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	writeWAL(t, c, 2)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = a.Run(ctx)
	var se *SinkError
	if !errors.As(err, &se) || se.Tries < 2 {
		t.Fatalf("Run with a sink that keeps failing: %v", err)
	}
	if rs := slotRestart(t, c, "flaky"); rs > archivedThrough(t, dir, 1<<20) {
		t.Fatalf("slot restart_lsn %s passed the archive's end", rs)
	}
}

// A server restart (fast shutdown) and a crash (immediate) are survived.
func TestArchiveServerRestart(t *testing.T) {
	c := newCluster(t, nil)
	dir := t.TempDir()
	sink, err := NewDirSink(dir)
	if err != nil {
		t.Fatal(err)
	}
	r := start(t, baseConfig(t, c.DSN(), "restart", sink))
	writeWAL(t, c, 2)
	waitFlushed(t, r, currentLSN(t, c).SegmentStart(1<<20), time.Minute)
	if err := c.Restart(); err != nil {
		t.Fatal(err)
	}
	writeWAL(t, c, 2)
	waitFlushed(t, r, currentLSN(t, c).SegmentStart(1<<20), time.Minute)
	c.Kill()
	if err := c.StartAgain(); err != nil {
		t.Fatal(err)
	}
	writeWAL(t, c, 2)
	waitFlushed(t, r, currentLSN(t, c).SegmentStart(1<<20), time.Minute)
	if st := r.a.Status(); st.Reconnects < 2 {
		t.Fatalf("reconnects: %d", st.Reconnects)
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	compareWithServer(t, c, dir)
	checkVerify(t, dir)
}

// The archiver streams from a standby; after its promotion it stores 00000002.history and goes
// on with timeline 2.
func TestArchiveTimelineSwitch(t *testing.T) {
	p := newCluster(t, nil)
	s := p.Standby(t)
	dir := t.TempDir()
	sink, err := NewDirSink(dir)
	if err != nil {
		t.Fatal(err)
	}
	r := start(t, baseConfig(t, s.DSN(), "onstandby", sink))
	writeWAL(t, p, 3)
	waitFlushed(t, r, currentLSN(t, p).SegmentStart(1<<20), time.Minute)
	s.Promote(t)
	writeWAL(t, s, 3)
	waitFlushed(t, r, currentLSN(t, s).SegmentStart(1<<20), time.Minute)
	st := r.a.Status()
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	if st.Timeline != 2 || st.HistoryFiles == 0 {
		t.Fatalf("status after promotion: %+v", st)
	}
	if _, err := os.Stat(filepath.Join(dir, "00000002.history")); err != nil {
		t.Fatal(err)
	}
	compareWithServer(t, s, dir)
	rep := checkVerify(t, dir)
	if len(rep.Timelines) != 2 {
		t.Fatalf("timelines: %v", rep.Timelines)
	}
}

// With Synchronous and the archiver in synchronous_standby_names, a commit that returned is in
// the archive (its partial segment) even when the archiver is SIGKILLed right after.
func TestArchiveSynchronous(t *testing.T) {
	c := newCluster(t, nil)
	dir := t.TempDir()
	cmd := helperProcess(t, c, "syncslot", dir, true)
	deadline := time.Now().Add(time.Minute)
	for c.QueryValue(t, "select count(*) from pg_stat_replication where application_name = 'walweave'") != "1" {
		if time.Now().After(deadline) {
			t.Fatal("the archiver did not connect")
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.Exec(t, "alter system set synchronous_standby_names = 'walweave'")
	c.Exec(t, "alter system set synchronous_commit = on") // pgtest turns it off
	c.Exec(t, "select pg_reload_conf()")
	for c.QueryValue(t, "select count(*) from pg_stat_replication where application_name = 'walweave' and sync_state = 'sync'") != "1" {
		if time.Now().After(deadline) {
			t.Fatal("the archiver did not become a synchronous standby")
		}
		time.Sleep(50 * time.Millisecond)
	}
	for i := 0; i < 50; i++ {
		c.Exec(t, "insert into filler values ($1, $2)", i, fmt.Sprintf("walweave-sync-marker-%05d", i))
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	// Every row whose commit returned is in the archived WAL (complete segments and the
	// partial one).
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	// The WAL in order, page headers left out (a row may cross a page boundary).
	byName := map[string]string{}
	var bases []string
	for _, e := range ents {
		if f, ok := ParseFileName(e.Name()); ok && f.Kind != KindHistory {
			if _, seen := byName[f.Base]; !seen || f.Kind == KindSegment {
				if !seen {
					bases = append(bases, f.Base)
				}
				byName[f.Base] = e.Name()
			}
		}
	}
	sort.Strings(bases)
	var all []byte
	for _, base := range bases {
		b, err := readArchiveFile(dir, byName[base])
		if err != nil {
			t.Fatal(err)
		}
		for off := 0; off < len(b); off += 8192 {
			page := b[off:min(off+8192, len(b))]
			hdr := 24
			if off == 0 {
				hdr = 40
			}
			if len(page) > hdr {
				all = append(all, page[hdr:]...)
			}
		}
	}
	for i := 0; i < 50; i++ {
		if m := fmt.Sprintf("walweave-sync-marker-%05d", i); !bytes.Contains(all, []byte(m)) {
			t.Fatalf("row %q committed, but its WAL is not in the archive after a SIGKILL", m)
		}
	}
	// Free the commits of later tests: drop the slot's standby from the list.
	c.Exec(t, "alter system set synchronous_standby_names = ''")
	c.Exec(t, "alter system reset synchronous_commit")
	c.Exec(t, "select pg_reload_conf()")
}

// waitPartial waits until the partial file holds WAL up to end.
func waitPartial(t *testing.T, path string, end pgformat.LSN, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		if fi, err := os.Stat(path); err == nil && fi.Size() >= int64(end.SegmentOffset(1<<20)) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not hold the WAL up to %s", path, end)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkPartial checks that the partial file is the server's segment up to end.
func checkPartial(t *testing.T, c *pgtest.Cluster, path string, end pgformat.LSN) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join(c.DataDir, "pg_wal", strings.TrimSuffix(filepath.Base(path), ".partial")))
	if err != nil {
		t.Fatal(err)
	}
	n := end.SegmentOffset(1 << 20)
	if len(got) < n || !bytes.Equal(got[:n], want[:n]) {
		t.Fatalf("%s (%d bytes) is not the server's segment up to %s", path, len(got), end)
	}
}

// The command sink: every complete segment and history file through sh -c, {segment} replaced;
// no partial file; the slot follows what the command stored.
func TestArchiveExecSink(t *testing.T) {
	c := newCluster(t, nil)
	dir := t.TempDir()
	cfg := baseConfig(t, c.DSN(), "execsink", &ExecSink{Command: "cat > '" + dir + "'/{segment}.tmp && mv '" + dir + "'/{segment}.tmp '" + dir + "'/{segment}"})
	cfg.Compression = Compression{Algorithm: Zstd, Level: 5}
	r := start(t, cfg)
	writeWAL(t, c, 8)
	target := currentLSN(t, c).SegmentStart(1 << 20)
	waitFlushed(t, r, target, time.Minute)
	if rs := slotRestart(t, c, "execsink"); rs > r.a.Status().FlushLSN {
		t.Fatalf("slot restart_lsn %s past what the command stored", rs)
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	if n := compareWithServer(t, c, dir); n < 4 {
		t.Fatalf("%d segments stored", n)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "*.partial")); len(m) > 0 {
		t.Fatalf("partial files from a command sink: %v", m)
	}
	checkVerify(t, dir)
}
