package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"runtime/pprof"
	"syscall"
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
	mcfg := mux.Config{ConnString: srv.backupDSN, Checkpoint: mux.CheckpointFast, Label: "walweave-bench", Jobs: cfg.profileJobs}
	if cfg.verbose {
		mcfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if _, err := profiledBackup(ctx, srv, mcfg, "warm-up"); err != nil {
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
		if _, err := profiledBackup(ctx, srv, mcfg, fmt.Sprintf("profiled %d/%d", i+1, cfg.profileRuns)); err != nil {
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
func profiledBackup(ctx context.Context, srv *server, mcfg mux.Config, label string) (mux.Result, error) {
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return mux.Result{}, err
	}
	defer null.Close()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	cpu0, srv0 := selfCPU(), srv.cpu()
	start := time.Now()
	res, err := mux.Backup(ctx, null, mcfg)
	wall := time.Since(start)
	cpu := selfCPU() - cpu0
	runtime.ReadMemStats(&after)
	if err != nil {
		return res, fmt.Errorf("mux.Backup (%s): %w", label, err)
	}
	srvCPU := "n/a"
	if srv0 >= 0 {
		// Let the postmaster reap the backends (as contender.run does).
		time.Sleep(300 * time.Millisecond)
		if srv1 := srv.cpu(); srv1 >= 0 {
			srvCPU = fmt.Sprintf("%.2fs (%.2f s/GiB)", (srv1 - srv0).Seconds(), (srv1-srv0).Seconds()/(float64(res.BytesWritten)/(1<<30)))
		}
	}
	logf("%s: %s in %.2fs (%.0f MiB/s), client CPU %.2fs (%.2f s/GiB), server CPU %s, %d WAL segments, ring high water %d, %d mallocs, %s allocated, %d GCs",
		label, mib(res.BytesWritten), wall.Seconds(), float64(res.BytesWritten)/(1<<20)/wall.Seconds(),
		cpu.Seconds(), cpu.Seconds()/(float64(res.BytesWritten)/(1<<30)), srvCPU,
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

// selfCPU is this process's user+sys time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
