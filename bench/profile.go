package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"runtime/pprof"
	"time"

	"github.com/walweave/walweave/mux"
)

// runProfile runs mux.Backup in this process, writing to /dev/null as the CLI writes to
// its stdout, once unprofiled (warm-up) and then -profile-runs times under a CPU profile
// (and an allocation profile with -memprofile). With -load the pgbench load runs throughout.
func runProfile(ctx context.Context, cfg *config, srv *server) error {
	if cfg.load {
		l, err := startLoad(ctx, srv, cfg.clients)
		if err != nil {
			return err
		}
		defer func() { _ = l.stop() }()
		if err := sleep(ctx, cfg.loadRampUp); err != nil {
			return err
		}
	}
	if cfg.memProfile != "" {
		runtime.MemProfileRate = 64 << 10 // covers the warm-up too: compare with the mallocs logged
	}
	mcfg := mux.Config{ConnString: srv.backupDSN, Checkpoint: mux.CheckpointFast, Label: "walweave-bench"}
	if cfg.verbose {
		mcfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if _, err := profiledBackup(ctx, mcfg, "warm-up"); err != nil {
		return err
	}
	f, err := os.Create(cfg.profile)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		return err
	}
	for i := 0; i < cfg.profileRuns; i++ {
		if _, err := profiledBackup(ctx, mcfg, fmt.Sprintf("profiled %d/%d", i+1, cfg.profileRuns)); err != nil {
			pprof.StopCPUProfile()
			return err
		}
	}
	pprof.StopCPUProfile()
	if err := f.Close(); err != nil {
		return err
	}
	logf("CPU profile written: go tool pprof -top %s", cfg.profile)
	if cfg.memProfile != "" {
		return writeAllocProfile(cfg.memProfile)
	}
	return nil
}

// profiledBackup runs one in-process backup into /dev/null and logs its cost.
func profiledBackup(ctx context.Context, mcfg mux.Config, label string) (mux.Result, error) {
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return mux.Result{}, err
	}
	defer null.Close()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	res, err := mux.Backup(ctx, null, mcfg)
	wall := time.Since(start)
	runtime.ReadMemStats(&after)
	if err != nil {
		return res, fmt.Errorf("mux.Backup (%s): %w", label, err)
	}
	logf("%s: %s in %.2fs (%.0f MiB/s), %d WAL segments, ring high water %d, %d mallocs, %s allocated, %d GCs",
		label, mib(res.BytesWritten), wall.Seconds(), float64(res.BytesWritten)/(1<<20)/wall.Seconds(),
		res.WALSegments, res.RingHighWater, after.Mallocs-before.Mallocs,
		mib(int64(after.TotalAlloc-before.TotalAlloc)), after.NumGC-before.NumGC)
	return res, nil
}

// writeAllocProfile writes the heap profile (use -sample_index=alloc_space for allocations).
func writeAllocProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		return err
	}
	logf("allocation profile written: go tool pprof -sample_index=alloc_space -top %s", path)
	return f.Close()
}
