package mux_test

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/walweave/walweave/mux"
)

// TestIncrementalSizeVsChange measures an incremental backup's size and time against the
// fraction of a table's blocks changed since the prior backup (WALWEAVE_BENCH=1; PostgreSQL
// 17+). The table is about 160 MB; the rest of the cluster is a fresh initdb's. Each row of
// the printed table is a fresh full backup, the change, and an incremental backup.
func TestIncrementalSizeVsChange(t *testing.T) {
	if os.Getenv("WALWEAVE_BENCH") == "" {
		t.Skip("a benchmark: set WALWEAVE_BENCH=1")
	}
	c := requireIncremental(t, true)
	ctx := context.Background()
	c.Exec(t, "create table b (id int, pad text) with (fillfactor = 50)")
	c.Exec(t, "insert into b select g, repeat('p', 150) from generate_series(1, 400000) g")
	c.Exec(t, "vacuum (freeze, analyze) b")
	blocks := c.QueryValue(t, "select pg_relation_size('b') / current_setting('block_size')::int")
	cfg := mux.Config{ConnString: c.ReplicationDSN(), Checkpoint: mux.CheckpointFast}
	var rows []string
	rows = append(rows, fmt.Sprintf("table b: %s blocks; PostgreSQL %s", blocks, c.QueryValue(t, "current_setting('server_version')")),
		"| blocks changed | full: data bytes | incremental: data bytes | ratio | INCREMENTAL files | full time | incremental time |",
		"|---:|---:|---:|---:|---:|---:|---:|")
	for _, every := range []int{0, 1000, 100, 20, 4, 2, 1} {
		cfg.IncrementalFrom = nil
		full, fullN, _, fullTime := measuredBackup(t, ctx, cfg)
		label := "0%"
		if every > 0 {
			c.Exec(t, fmt.Sprintf("update b set pad = repeat('q', 150) where (ctid::text::point)[0]::int %% %d = 0", every))
			label = fmt.Sprintf("%.1f%%", 100/float64(every))
		}
		c.Exec(t, "checkpoint")
		cfg.IncrementalFrom = full.Manifest
		_, incN, incFiles, incTime := measuredBackup(t, ctx, cfg)
		rows = append(rows, fmt.Sprintf("| %s | %d | %d | %.1f%% | %d | %s | %s |", label, fullN, incN,
			100*float64(incN)/float64(fullN), incFiles, fullTime.Round(time.Millisecond), incTime.Round(time.Millisecond)))
	}
	t.Logf("\n%s", strings.Join(rows, "\n"))
}

// measuredBackup takes a backup and returns the bytes of its data members (WAL and the
// manifest left out), its INCREMENTAL members and its duration.
func measuredBackup(t *testing.T, ctx context.Context, cfg mux.Config) (mux.Result, int64, int, time.Duration) {
	t.Helper()
	pr, pw := io.Pipe()
	var data int64
	var incs int
	done := make(chan error, 1)
	go func() {
		tr := tar.NewReader(pr)
		for {
			h, err := tr.Next()
			if err != nil {
				if err == io.EOF {
					err = nil
				}
				_, _ = io.Copy(io.Discard, pr)
				done <- err
				return
			}
			if !strings.HasPrefix(h.Name, "pg_wal/") && h.Name != "backup_manifest" {
				data += h.Size
			}
			if strings.Contains(h.Name, "/INCREMENTAL.") {
				incs++
			}
		}
	}()
	start := time.Now()
	res, err := mux.Backup(ctx, pw, cfg)
	d := time.Since(start)
	pw.CloseWithError(err)
	if rerr := <-done; err == nil && rerr != nil {
		err = rerr
	}
	if err != nil {
		t.Fatal(err)
	}
	return res, data, incs, d
}
