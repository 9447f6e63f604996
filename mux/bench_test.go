package mux_test

import (
	"context"
	"io"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/walweave/walweave/internal/pgtest"
	"github.com/walweave/walweave/mux"
)

// BenchmarkBackupMemory backs up a cluster of about 1 GiB (pgbench scale 70, or
// WALWEAVE_BENCH_SCALE) to io.Discard on an idle server and reports the throughput and the
// peak heap in use (sampled every millisecond) beyond the ring's live segments. Target:
// under 32 MiB.
//
//	go test -run XXX -bench BackupMemory -benchtime 3x ./mux/
func BenchmarkBackupMemory(b *testing.B) {
	scale := 70
	if s, err := strconv.Atoi(os.Getenv("WALWEAVE_BENCH_SCALE")); err == nil && s > 0 {
		scale = s
	}
	c := pgtest.Start(b, pgtest.Options{})
	c.PgbenchInit(b, scale)
	c.Exec(b, "checkpoint")
	size, _ := strconv.ParseInt(c.QueryValue(b, "select sum(pg_database_size(oid)) from pg_database"), 10, 64)
	b.SetBytes(size)
	var peak atomic.Uint64
	var res mux.Result
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		runtime.GC()
		var base runtime.MemStats
		runtime.ReadMemStats(&base)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			var m runtime.MemStats
			for {
				select {
				case <-stop:
					return
				case <-time.After(time.Millisecond):
				}
				runtime.ReadMemStats(&m)
				if m.HeapInuse > base.HeapInuse {
					if d := m.HeapInuse - base.HeapInuse; d > peak.Load() {
						peak.Store(d)
					}
				}
			}
		}()
		var err error
		res, err = mux.Backup(context.Background(), io.Discard, mux.Config{ConnString: c.DSN(), Checkpoint: mux.CheckpointFast})
		close(stop)
		wg.Wait()
		if err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	ring := float64(res.RingHighWater) * 16
	b.ReportMetric(float64(peak.Load())/(1<<20), "peak-heap-MiB")
	b.ReportMetric(float64(peak.Load())/(1<<20)-ring, "peak-heap-beyond-ring-MiB")
	b.ReportMetric(float64(res.RingHighWater), "ring-high-water")
}
