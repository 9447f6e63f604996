package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/walweave/walweave/internal/pgtest"
	"github.com/walweave/walweave/pgformat"
	"github.com/walweave/walweave/walarchive"
)

// wal get's exit statuses are what recovery needs: 0 restored, 1 quietly for a file the archive
// does not have (the end of the archive), above 125 for anything else, 2 for a usage error.
func TestWALGetExitStatus(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
	// A file in the archive that is no WAL segment: corrupt, not the end of the archive.
	junk := bytes.Repeat([]byte{0x5A}, 1<<20)
	if err := os.WriteFile(filepath.Join(dir, "000000010000000000000003"), junk, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "00000002.history"), []byte("1\t0/3000000\tpromoted\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"wal", "get", "000000010000000000000004", dest, "--from", dir}, 1, ""},
		{[]string{"wal", "get", "00000003.history", dest, "--from", dir}, 1, ""},
		{[]string{"wal", "get", "00000002.history", dest, "--from", dir}, 0, ""},
		{[]string{"wal", "get", "000000010000000000000003", dest, "--from", dir, "--retries", "2"}, exitArchiveFailure, "corrupt archive file"},
		{[]string{"wal", "get", "000000010000000000000004", dest, "--from", filepath.Join(dir, "gone")}, exitArchiveFailure, "archive directory"},
		{[]string{"wal", "get", "000000010000000000000004", dest, "--from-exec", "exit 1"}, 1, ""},
		{[]string{"wal", "get", "000000010000000000000004", dest, "--from-exec", "echo no such bucket >&2; exit 2"}, exitArchiveFailure, "no such bucket"},
		{[]string{"wal", "get", "00000002.history", dest, "--from-exec", "cat " + dir + "/{segment}"}, 0, ""},
		{[]string{"wal", "get", "000000010000000000000004", dest}, exitUsage, "--from"},
		{[]string{"wal", "get", "000000010000000000000004"}, exitUsage, "DEST"},
	}
	for _, c := range cases {
		_, stderr, code := walweave(t, ctx, nil, c.args...)
		if code != c.code || (c.stderr == "" && stderr != "") || !strings.Contains(stderr, c.stderr) {
			t.Errorf("walweave %s: exit %d, stderr %q; want %d and %q", strings.Join(c.args, " "), code, stderr, c.code, c.stderr)
		}
	}
	if b, err := os.ReadFile(dest); err != nil || !strings.HasPrefix(string(b), "1\t0/3000000") {
		t.Fatalf("the history file was not restored: %q %v", b, err)
	}
}

// The PITR test: a base backup, the archiver running, a write load with one marker row a
// second; a restore to a time between two markers has exactly the markers before it and
// pgbench's invariant; a restore to the end of the archive has every marker.
func TestPointInTimeRecovery(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{Settings: map[string]string{"wal_sender_timeout": "10s"}})
	c.PgbenchInit(t, 1)
	c.Exec(t, "create table marker (i int primary key, at timestamptz not null)")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	archive, err := c.NewDir("wal")
	if err != nil {
		t.Fatal(err)
	}
	statusFile := filepath.Join(t.TempDir(), "status.json")
	metrics := freeAddr(t)
	arch := exec.CommandContext(ctx, binary, "wal", "stream", "-d", c.DSN(), "-S", "pitr", "--create-slot", "-o", archive,
		"--compress", "zstd", "--status-file", statusFile, "--metrics-addr", metrics)
	var archErr bytes.Buffer
	arch.Stderr = &archErr
	if err := arch.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if arch.ProcessState == nil {
			_ = arch.Process.Kill()
			_ = arch.Wait()
		}
	})

	base := filepath.Join(t.TempDir(), "base.tar")
	if _, stderr, code := walweave(t, ctx, nil, "backup", "-d", c.DSN(), "-c", "fast", "-o", base); code != 0 {
		t.Fatalf("backup: %d %s", code, stderr)
	}
	load := c.StartLoad(t, 2)
	const markers = 8
	var at [markers]time.Time
	for i := 0; i < markers; i++ {
		if i > 0 {
			time.Sleep(time.Second)
		}
		c.Exec(t, "insert into marker values ($1, clock_timestamp())", i)
		v := c.QueryValue(t, "select extract(epoch from at) from marker where i = $1", i)
		sec, err := strconv.ParseFloat(v, 64)
		if err != nil {
			t.Fatal(err)
		}
		at[i] = time.UnixMicro(int64(sec * 1e6)).UTC()
	}
	if err := load.Stop(); err != nil {
		t.Fatal(err)
	}
	// The last marker into a complete segment, and that segment into the archive.
	sw, err := pgformat.ParseLSN(c.QueryValue(t, "select pg_switch_wal()"))
	if err != nil {
		t.Fatal(err)
	}
	last := pgformat.WALFileName(1, sw, 16<<20) + ".zst"
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if _, err := os.Stat(filepath.Join(archive, last)); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not archived; archiver: %s", last, archErr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The status file and the metrics say so too.
	var st walarchive.Status
	waitFor(t, "the status file to name "+last, func() bool {
		b, err := os.ReadFile(statusFile)
		return err == nil && json.Unmarshal(b, &st) == nil && st.LastSegment >= last
	})
	resp, err := http.Get("http://" + metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "walweave_wal_archive_segments_total") || !strings.Contains(string(body), "walweave_wal_archive_lag_bytes") {
		t.Fatalf("metrics: %s", body)
	}
	if err := arch.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := arch.Wait(); err != nil {
		t.Fatalf("archiver after SIGTERM: %v\n%s", err, archErr.String())
	}
	if stdout, stderr, code := walweave(t, ctx, nil, "wal", "verify", archive); code != 0 {
		t.Fatalf("wal verify: %d %s %s", code, stdout, stderr)
	}
	if err := pgtest.Chown(archive); err != nil {
		t.Fatal(err)
	}

	// To a time between markers 4 and 5: exactly markers 0..4.
	target := at[4].Add(at[5].Sub(at[4]) / 2).Format("2006-01-02 15:04:05.000000+00")
	dir, err := c.NewDir("pitr")
	if err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := walweave(t, ctx, nil, "restore", "-D", dir, "--recovery", "--target-time", target, "--wal-from", archive, base); code != 0 {
		t.Fatalf("restore: %d %s", code, stderr)
	}
	r := pgtest.StartOn(t, dir, nil)
	waitFor(t, "recovery to pause at the target", func() bool {
		return r.QueryValue(t, "select pg_get_wal_replay_pause_state()") == "paused"
	})
	if got := r.QueryValue(t, "select count(*) || ' ' || max(i) from marker"); got != "5 4" {
		t.Fatalf("restored to %s: markers %q, want 0..4", target, got)
	}
	if r.QueryValue(t, pgtest.Invariant) != "true" {
		t.Fatal("pgbench invariant does not hold at the target time")
	}
	r.Close()

	// To the end of the archive: every marker.
	dir2, err := c.NewDir("pitr-end")
	if err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := walweave(t, ctx, nil, "restore", "-D", dir2, "--wal-from", archive, base); code != 0 {
		t.Fatalf("restore: %d %s", code, stderr)
	}
	r2 := pgtest.StartOn(t, dir2, nil)
	waitFor(t, "recovery to end and promote", func() bool { return r2.QueryValue(t, "select pg_is_in_recovery()") == "false" })
	if got := r2.QueryValue(t, "select count(*) || ' ' || max(i) from marker"); got != fmt.Sprintf("%d %d", markers, markers-1) {
		t.Fatalf("restored to the end of the archive: markers %q, want all %d", got, markers)
	}
	if r2.QueryValue(t, pgtest.Invariant) != "true" {
		t.Fatal("pgbench invariant does not hold at the end of the archive")
	}

	// Retention: what the base backup does not need goes; the rest still verifies.
	stdout, stderr, code := walweave(t, ctx, nil, "wal", "prune", archive, "--before-backup", base)
	_, before, ok := strings.Cut(strings.TrimSpace(stderr), " before ")
	if code != 0 || !ok {
		t.Fatalf("wal prune: %d %q %q", code, stdout, stderr)
	}
	ents, err := os.ReadDir(archive)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if f, ok := walarchive.ParseFileName(e.Name()); ok && f.Kind != walarchive.KindHistory && f.Base < before {
			t.Errorf("%s left by prune --before-backup (the backup starts in %s)", e.Name(), before)
		}
	}
	if stdout, stderr, code := walweave(t, ctx, nil, "wal", "verify", archive); code != 0 || !strings.Contains(stdout, "from "+before+" ") {
		t.Fatalf("wal verify after prune: %d %s %s", code, stdout, stderr)
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// Usage errors of the wal commands: refused before anything is done, exit 2, one line.
func TestWALUsageErrors(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"wal", "stream", "-d", "host=/nonexistent", "-o", dir}, "-S SLOT is required"},
		{[]string{"wal", "stream", "-S", "s", "-o", dir, "--exec", "cat"}, "one of -o DIR and --exec CMD"},
		{[]string{"wal", "stream", "-S", "s"}, "one of -o DIR and --exec CMD"},
		{[]string{"wal", "stream", "-S", "s", "--exec", "cat", "--synchronous"}, "--synchronous needs -o DIR"},
		{[]string{"wal", "stream", "-S", "s", "-o", dir, "--compress", "gzip"}, "--compress"},
		{[]string{"wal", "stream", "-S", "s", "-o", dir, "--compress", "lz4:3"}, "--compress"},
		{[]string{"wal", "stream", "-S", "s", "-o", dir, "--retry-for", "0s"}, "--retry-for"},
		{[]string{"wal", "stream", "-S", "s", "-o", dir, "extra"}, "unexpected argument"},
		{[]string{"wal", "verify", dir}, "no complete WAL segment"},
		{[]string{"wal", "verify"}, "archive directory DIR"},
		{[]string{"wal", "prune", dir}, "--before-backup STREAM and --before SEGMENT"},
		{[]string{"wal", "prune", dir, "--before", "junk"}, "not a WAL segment name"},
		{[]string{"wal", "prune", dir, "--before-backup", filepath.Join(dir, "missing.tar")}, "--before-backup"},
		{[]string{"wal", "nope"}, "unknown command"},
		{[]string{"restore", "-D", filepath.Join(dir, "d"), "--wal-from", dir, "--wal-from-exec", "cat", "-"}, "exclude each other"},
		{[]string{"restore", "-D", filepath.Join(dir, "d"), "--wal-from", dir, "--restore-command", "cp", "-"}, "exclude each other"},
		{[]string{"restore", "-D", filepath.Join(dir, "d"), "--wal-from", filepath.Join(dir, "none"), "-"}, "not a directory"},
	}
	for _, c := range cases {
		stdout, stderr, code := walweave(t, context.Background(), nil, c.args...)
		if code != exitUsage || !strings.Contains(stderr, c.want) || strings.Count(strings.TrimSpace(stderr), "\n") > 0 || stdout != "" {
			t.Errorf("walweave %s: exit %d, stdout %q, stderr %q; want 2 and one line with %q", strings.Join(c.args, " "), code, stdout, stderr, c.want)
		}
	}
}

// wal verify's summary counts the segments checked and, after a failover, names the old
// timeline's segments past the fork (walarchive.VerifyReport.Abandoned) without calling them
// a problem.
func TestWALVerifySummary(t *testing.T) {
	rep := &walarchive.VerifyReport{Segments: 1, First: "000000010000000000000002", Last: "000000010000000000000002", Timelines: []uint32{1}, Records: 7}
	if got, want := walVerifySummary(rep), "1 segment from 000000010000000000000002 to 000000010000000000000002 on 1 timeline, 7 records checked"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	rep.Segments, rep.Last, rep.Timelines = 5, "000000020000000000000006", []uint32{1, 2}
	rep.Abandoned = []string{"000000010000000000000005", "000000010000000000000006"}
	want := "5 segments from 000000010000000000000002 to 000000020000000000000006 on 2 timelines, 7 records checked (and 2 segments, 000000010000000000000005 to 000000010000000000000006, of a branch a failover abandoned: recovery to the latest timeline does not read them)"
	if got := walVerifySummary(rep); got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
}
