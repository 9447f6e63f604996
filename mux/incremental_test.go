package mux_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/walweave/walweave/internal/pgtest"
	"github.com/walweave/walweave/mux"
	"github.com/walweave/walweave/pgformat"
)

// requireIncremental starts a 17+ cluster with summarize_wal = on (skips on older servers).
func requireIncremental(t *testing.T, summarize bool) *pgtest.Cluster {
	t.Helper()
	s, err := pgtest.Selected()
	if err == nil && s.Major < 17 {
		t.Skipf("incremental backups need PostgreSQL 17+; %s selected (WALWEAVE_PG=17)", s)
	}
	set := map[string]string{}
	if summarize {
		set["summarize_wal"] = "on"
	}
	return pgtest.Start(t, pgtest.Options{Settings: set})
}

func TestIncrementalBackup(t *testing.T) {
	c := requireIncremental(t, true)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c.Exec(t, "create table big as select g, repeat('x', 200) pad from generate_series(1, 200000) g")
	cfg := mux.Config{ConnString: c.ReplicationDSN(), Checkpoint: mux.CheckpointFast}
	fullPath, full, err := backupToFile(t, ctx, nil, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if full.Incremental || len(full.Manifest) == 0 {
		t.Fatalf("full backup: Incremental %v, manifest %d bytes", full.Incremental, len(full.Manifest))
	}
	c.Exec(t, "update big set pad = 'y' where g % 1000 = 0")
	cfg.IncrementalFrom = full.Manifest
	incPath, inc, err := backupToFile(t, ctx, nil, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !inc.Incremental {
		t.Error("Result.Incremental is false")
	}
	var incMembers int
	for _, m := range pgtest.ListTar(t, incPath) {
		if strings.Contains(m.Name, "/INCREMENTAL.") {
			incMembers++
		}
	}
	if incMembers == 0 {
		t.Error("no INCREMENTAL members in the incremental stream")
	}
	fs, is := fileSize(t, fullPath), fileSize(t, incPath)
	t.Logf("full %d bytes, incremental %d bytes (%.1f%%), %d INCREMENTAL members", fs, is, 100*float64(is)/float64(fs), incMembers)
	if is >= fs {
		t.Errorf("the incremental stream (%d) is not smaller than the full one (%d)", is, fs)
	}
}

func TestIncrementalRefusals(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	off := requireIncremental(t, false)
	cfg := mux.Config{ConnString: off.ReplicationDSN(), Checkpoint: mux.CheckpointFast}
	_, full, err := backupToFile(t, ctx, nil, cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.IncrementalFrom = full.Manifest
	_, err = mux.Backup(ctx, io.Discard, cfg)
	var ie *mux.IncrementalError
	if !errors.Is(err, mux.ErrSummarizeWALOff) || !errors.As(err, &ie) || ie.Advice == "" {
		t.Errorf("summarize_wal off: got %v", err)
	}
	t.Logf("summarize_wal off: %v", err)

	other := requireIncremental(t, true)
	cfg.ConnString = other.ReplicationDSN()
	_, err = mux.Backup(ctx, io.Discard, cfg)
	if !errors.Is(err, mux.ErrPriorOtherSystem) {
		t.Errorf("another system: got %v", err)
	}
	t.Logf("another system: %v", err)

	damaged := append([]byte(nil), full.Manifest...)
	damaged[len(damaged)/2] ^= 1
	cfg.IncrementalFrom = damaged
	_, err = mux.Backup(ctx, io.Discard, cfg)
	if !errors.Is(err, mux.ErrPriorManifest) {
		t.Errorf("damaged manifest: got %v", err)
	}
	t.Logf("damaged manifest: %v", err)

	// A manifest (with a valid checksum) whose WAL is on a timeline this server never had.
	sysid, err := strconv.ParseUint(other.QueryValue(t, "select system_identifier from pg_control_system()"), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	var forged bytes.Buffer
	b, err := pgformat.NewManifestBuilder(&forged, pgformat.ManifestOptions{SystemIdentifier: sysid})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Finish([]pgformat.WALRange{{Timeline: 7, Start: 0x1000028, End: 0x1000100}}); err != nil {
		t.Fatal(err)
	}
	cfg.IncrementalFrom = forged.Bytes()
	_, err = mux.Backup(ctx, io.Discard, cfg)
	if !errors.Is(err, mux.ErrPriorTimeline) {
		t.Errorf("another timeline: got %v", err)
	}
	t.Logf("another timeline: %v", err)

	// The WAL summaries since a backup of this server removed: the server cannot say what
	// changed.
	cfg.IncrementalFrom = nil
	_, prior, err := backupToFile(t, ctx, nil, cfg)
	if err != nil {
		t.Fatal(err)
	}
	other.Exec(t, "create table s as select generate_series(1, 10000) g")
	other.Exec(t, "select pg_switch_wal()")
	other.Exec(t, "checkpoint")
	// Wait until the summarizer has passed the prior backup (it lags behind the WAL).
	target := prior.EndLSN.String()
	deadline := time.Now().Add(30 * time.Second)
	for other.QueryValue(t, "select summarized_lsn >= $1::pg_lsn from pg_get_wal_summarizer_state()", target) != "true" && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	sums, _ := filepath.Glob(filepath.Join(other.DataDir, "pg_wal", "summaries", "*.summary"))
	for _, f := range sums {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	if len(sums) == 0 {
		t.Log("summaries missing: not checked, the summarizer wrote no summary within 30 s")
		return
	}
	cfg.IncrementalFrom = prior.Manifest
	_, err = mux.Backup(ctx, io.Discard, cfg)
	if !errors.Is(err, mux.ErrSummariesMissing) {
		t.Errorf("summaries removed (%d files): got %v", len(sums), err)
	}
	t.Logf("summaries missing: %v", err)
}

func fileSize(t *testing.T, p string) int64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// TestIncrementalUnsupported: before PostgreSQL 17, an incremental backup is refused before
// anything is uploaded.
func TestIncrementalUnsupported(t *testing.T) {
	if s, err := pgtest.Selected(); err == nil && s.Major >= 17 {
		t.Skipf("%s takes incremental backups", s)
	}
	c := pgtest.Start(t, pgtest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := mux.Backup(ctx, io.Discard, mux.Config{ConnString: c.ReplicationDSN(), Checkpoint: mux.CheckpointFast, IncrementalFrom: []byte("{}")})
	if !errors.Is(err, mux.ErrIncrementalUnsupported) {
		t.Fatalf("got %v", err)
	}
	t.Log(err)
}
