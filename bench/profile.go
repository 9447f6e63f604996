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

	"github.com/walweave/walweave/internal/source/sqlfetch"
	"github.com/walweave/walweave/mux"
	"github.com/walweave/walweave/source"
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
	if len(cfg.profileChunks) > 0 {
		return compareChunks(ctx, cfg, srv, mcfg)
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

// compareChunks runs --jobs backups with each chunk size in turn (-profile-chunks), for
// -profile-runs rounds, and prints the medians of client and server CPU per GiB and of the
// wall time per chunk size: the server-cost measurement, side by side in one run.
func compareChunks(ctx context.Context, cfg *config, srv *server, mcfg mux.Config) error {
	type result struct{ wall, cpu, srv []float64 }
	res := make([]result, len(cfg.profileChunks))
	for round := 0; round < cfg.profileRuns; round++ {
		for k := range cfg.profileChunks {
			i := (round + k) % len(cfg.profileChunks)
			v := cfg.profileChunks[i]
			c := mcfg
			c.Source = sqlfetch.New(sqlfetch.Config{ConnString: srv.backupDSN, Jobs: max(cfg.profileJobs, 1), Label: mcfg.Label,
				Checkpoint: source.CheckpointFast, ChunkSize: v.chunk, Window: cfg.profileWindow, Depth: cfg.profileDepth, RowSize: v.row})
			c.Jobs = 0 // the source above has them; mux refuses Jobs with a caller's Source
			cpu0, srv0 := selfCPU(), srv.cpu()
			start := time.Now()
			r, err := profiledBackup(ctx, srv, c, fmt.Sprintf("%s, round %d", v, round+1))
			if err != nil {
				return err
			}
			wall := time.Since(start)
			cpu := selfCPU() - cpu0
			gib := float64(r.BytesWritten) / (1 << 30)
			res[i].wall = append(res[i].wall, wall.Seconds())
			res[i].cpu = append(res[i].cpu, cpu.Seconds()/gib)
			if srv1 := srv.cpu(); srv0 >= 0 && srv1 >= 0 {
				res[i].srv = append(res[i].srv, (srv1-srv0).Seconds()/gib)
			}
		}
	}
	fmt.Printf("| sqlfetch settings | wall median | client CPU s/GiB | server CPU s/GiB |\n|---:|---:|---:|---:|\n")
	for i, v := range cfg.profileChunks {
		fmt.Printf("| %s | %.2f s | %.2f | %.2f |\n", v, median(res[i].wall), median(res[i].cpu), median(res[i].srv))
	}
	return nil
}

// fetchVariant is a chunk size and a row size (-1: one row per chunk) for sqlfetch.
type fetchVariant struct{ chunk, row int }

func (v fetchVariant) String() string {
	if v.row < 0 || v.row >= v.chunk {
		return fmt.Sprintf("chunk %d KiB, one row", v.chunk>>10)
	}
	return fmt.Sprintf("chunk %d KiB, rows of %d KiB", v.chunk>>10, v.row>>10)
}
