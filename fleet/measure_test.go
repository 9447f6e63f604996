package fleet_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/walweave/walweave/fleet"
	"github.com/walweave/walweave/mux"
)

// TestWallTime measures a 3-node fleet backup against the slowest of the three nodes backed
// up alone (mux.Backup to a file, fsynced, one after the other), and the spread between the
// nodes' restore points, in two settings:
//
//   - rate-limited: each server sends at most 16 MB/s (MaxRate), so each node is bound by its
//     own server, as separate machines are: the ratio shows what the fleet itself costs
//     (barrier, restore points, flush); the target is 1.2, the test fails above 1.5.
//   - unlimited: three servers and three backups share this machine's cores and disk, so the
//     fleet takes about as long as the three nodes one after the other; logged only.
func TestWallTime(t *testing.T) {
	cs, names := startFleet(t, 3, nil)
	for _, c := range cs {
		fill(t, c, 300000)
	}
	dir := t.TempDir()
	for _, m := range []struct {
		name     string
		rate     int64
		maxRatio float64
	}{{"rate-limited", 16 << 20, 1.5}, {"unlimited", 0, 0}} {
		t.Run(m.name, func(t *testing.T) {
			cfg := mux.Config{Checkpoint: mux.CheckpointFast, MaxRate: m.rate}
			var slowest time.Duration
			for i, c := range cs {
				f, err := os.Create(filepath.Join(dir, "single.tar"))
				if err != nil {
					t.Fatal(err)
				}
				start := time.Now()
				cfg.ConnString = c.DSN()
				res, err := mux.Backup(context.Background(), f, cfg)
				if err == nil {
					err = f.Sync()
				}
				took := time.Since(start)
				f.Close()
				os.Remove(f.Name())
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("node %s alone: %v, %d MiB", names[i], took.Round(time.Millisecond), res.BytesWritten>>20)
				slowest = max(slowest, took)
			}
			sub := t.TempDir()
			start := time.Now()
			rep, err := fleet.Backup(context.Background(), fileNodes(cs, names, sub), fleet.Options{Config: cfg})
			took := time.Since(start)
			if err != nil {
				t.Fatal(err)
			}
			ratio := float64(took) / float64(slowest)
			t.Logf("fleet of 3: %v; slowest alone %v; ratio %.2f; barrier to restore points delivered %v; restore point spread %v",
				took.Round(time.Millisecond), slowest.Round(time.Millisecond), ratio,
				time.Duration(rep.RestorePointTime).Round(time.Microsecond), time.Duration(rep.RestorePointSpread))
			if m.maxRatio > 0 && ratio > m.maxRatio {
				t.Fatalf("the fleet took %.2f times the slowest node alone", ratio)
			}
		})
	}
}
