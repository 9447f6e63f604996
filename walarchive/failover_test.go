package walarchive

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/walweave/walweave/internal/pgtest"
	"github.com/walweave/walweave/pgformat"
	"github.com/walweave/walweave/verify"
)

// A failover to a standby that missed WAL the archive stored: the primary P (timeline 1) goes
// on writing while its standby S is down, the archiver stores that WAL, P stops, S comes back
// without reaching P and is promoted (timeline 2 forks from timeline 1 before the archive's
// end). An archiver on S with the same archive must not loop on the walsender's refusal of
// timeline 1 past the fork: it goes on with timeline 2 from the fork's segment, stores
// 00000002.history, warns about the abandoned segments of timeline 1, and a restart continues
// with timeline 2. The archive is the servers' WAL byte for byte, Verify accepts it (listing
// the abandoned segments), and a base backup taken before the failover recovers through it to
// timeline 2's data, without the rows of the abandoned branch.
func TestArchiveFailoverFork(t *testing.T) {
	const segSize = 1 << 20
	p := newCluster(t, nil)
	p.Exec(t, "create table marker (s text)")
	s := p.Standby(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dir, err := p.NewDir("wal")
	if err != nil {
		t.Fatal(err)
	}
	sink, err := NewDirSink(dir)
	if err != nil {
		t.Fatal(err)
	}
	r := start(t, baseConfig(t, p.DSN(), "failover", sink))
	bak, err := p.NewDir("base")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.TarBackup(ctx, bak, pgtest.TarBackupOptions{WAL: true, NoManifest: true}); err != nil {
		t.Fatal(err)
	}
	p.Exec(t, "insert into marker values ('before')")
	writeWAL(t, p, 2)
	caughtUp := currentLSN(t, p)
	waitFlushed(t, r, caughtUp.SegmentStart(segSize), time.Minute)
	deadline := time.Now().Add(time.Minute)
	for s.QueryValue(t, "select pg_last_wal_replay_lsn() >= $1::pg_lsn", caughtUp.String()) != "true" {
		if time.Now().After(deadline) {
			t.Fatal("the standby did not catch up")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The standby misses what follows; the archive stores it.
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	p.Exec(t, "insert into marker values ('lost')")
	writeWAL(t, p, 3)
	waitFlushed(t, r, currentLSN(t, p).SegmentStart(segSize), time.Minute)
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	lostEnd := archivedThrough(t, dir, segSize)
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := s.StartAgain(); err != nil {
		t.Fatal(err)
	}
	s.Promote(t)
	hist, err := os.ReadFile(filepath.Join(s.DataDir, "pg_wal", "00000002.history"))
	if err != nil {
		t.Fatal(err)
	}
	h, err := pgformat.ParseHistory(hist)
	if err != nil || len(h) != 1 || h[0].Timeline != 1 {
		t.Fatalf("the promoted standby's history: %v %q", err, hist)
	}
	fork := h[0].SwitchLSN
	if fork.SegmentStart(segSize)+segSize >= lostEnd {
		t.Fatalf("the fork %s is not before the archive's last segment of timeline 1 (it ends at %s)", fork, lostEnd)
	}
	s.Exec(t, "insert into marker values ('after')")
	// More WAL on timeline 2 than the archive has of timeline 1 past the fork: a flush position
	// past the target then says the archiver streamed timeline 2.
	for currentLSN(t, s).SegmentStart(segSize) <= lostEnd {
		writeWAL(t, s, 2)
	}

	var log pgtest.SyncBuffer
	cfg := baseConfig(t, s.DSN(), "failover", sink)
	cfg.Logger = slog.New(slog.NewTextHandler(&log, nil))
	r = start(t, cfg)
	target := currentLSN(t, s).SegmentStart(segSize)
	waitTimeline(t, r, dir, 2, target)
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	abandonedFrom, abandonedTo := pgformat.WALFileName(1, fork, segSize), pgformat.WALFileName(1, lostEnd-1, segSize)
	if out := log.String(); !strings.Contains(out, "level=WARN") || !strings.Contains(out, "abandoned") ||
		!strings.Contains(out, abandonedFrom) || !strings.Contains(out, abandonedTo) {
		t.Errorf("no warning naming the abandoned segments %s to %s:\n%s", abandonedFrom, abandonedTo, out)
	}
	for _, name := range []string{"00000002.history", pgformat.WALFileName(2, fork, segSize)} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}

	// A restart goes on after the archive's newest segment of timeline 2, without warning.
	s.Exec(t, "insert into marker values ('after restart')")
	sw, err := pgformat.ParseLSN(s.QueryValue(t, "select pg_switch_wal()"))
	if err != nil {
		t.Fatal(err)
	}
	var log2 pgtest.SyncBuffer
	cfg.Logger = slog.New(slog.NewTextHandler(&log2, nil))
	r = start(t, cfg)
	waitTimeline(t, r, dir, 2, sw.SegmentStart(segSize)+segSize)
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	if out := log2.String(); strings.Contains(out, "level=WARN") {
		t.Errorf("the restart warned:\n%s", out)
	}

	compareWithServers(t, dir, func(f FileName) *pgtest.Cluster {
		if f.Timeline == 1 && f.Kind == KindSegment {
			return p // the old primary's timeline, past the fork too
		}
		return s
	})
	rep := checkVerify(t, dir)
	// Abandoned: timeline 1's segments from the fork on (the fork's own segment, partly
	// timeline 2's past, when the fork is inside it is not).
	var want []string
	for l := (fork + segSize - 1).SegmentStart(segSize); l < lostEnd; l += segSize {
		want = append(want, pgformat.WALFileName(1, l, segSize))
	}
	if !slices.Equal(rep.Timelines, []uint32{1, 2}) || len(want) == 0 || !slices.Equal(rep.Abandoned, want) {
		t.Fatalf("verify: timelines %v, abandoned %v, want %v (fork %s)", rep.Timelines, rep.Abandoned, want, fork)
	}

	// A base backup from before the failover recovers through the archive to timeline 2.
	if err := pgtest.Chown(dir); err != nil {
		t.Fatal(err)
	}
	data, err := p.NewDir("restored")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("tar", "-xf", filepath.Join(bak, "base.tar"), "-C", data).CombinedOutput(); err != nil {
		t.Fatalf("tar -xf base.tar: %v\n%s", err, out)
	}
	if err := os.WriteFile(filepath.Join(data, "recovery.signal"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	rc := pgtest.StartOn(t, data, map[string]string{"restore_command": `cp "` + dir + `/%f" "%p"`, "recovery_target_timeline": "latest"})
	deadline = time.Now().Add(2 * time.Minute)
	for rc.QueryValue(t, "select pg_is_in_recovery()") != "false" {
		if time.Now().After(deadline) {
			t.Fatal("recovery from the archive did not end")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := rc.QueryValue(t, "select string_agg(s, ',' order by s) from marker"); got != "after,after restart,before" {
		t.Fatalf("restored markers %q, want timeline 2's (without the abandoned branch's 'lost')", got)
	}

	// Verify wants the segment where timeline 2 begins (recovery never reads timeline 1's).
	begin := pgformat.WALFileName(2, fork, segSize)
	if err := os.Remove(filepath.Join(dir, begin)); err != nil {
		t.Fatal(err)
	}
	rep, err = Verify(ctx, dir, VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || !slices.ContainsFunc(rep.Problems, func(p verify.Problem) bool { return p.Path == begin }) {
		t.Fatalf("verify without %s: %v", begin, rep.Problems)
	}
}

// waitTimeline waits until the archiver streams timeline tli and the archive holds its
// segments up to end.
func waitTimeline(t *testing.T, r *running, dir string, tli uint32, end pgformat.LSN) {
	t.Helper()
	last := filepath.Join(dir, pgformat.WALFileName(tli, end-1, 1<<20))
	waitStatus(t, r, time.Minute, "storing of "+last, func(st Status) bool {
		_, err := os.Stat(last)
		return err == nil && st.Timeline == tli && st.FlushLSN >= end
	})
}
