package walstream

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/walweave/walweave/internal/pgrepl"
	"github.com/walweave/walweave/pgformat"
	"github.com/walweave/walweave/ringbuf"
)

var (
	benchOnce            sync.Once
	benchStart, benchEnd pgformat.LSN
)

// BenchmarkReceive streams already-written WAL (about 128 MiB of real table data, kept by
// wal_keep_size) from its start to its end with a consumer that releases every segment at once,
// and reports the receive throughput and the allocations per XLogData message (the whole
// Stream call, setup included, divided by the number of messages).
func BenchmarkReceive(b *testing.B) {
	c := sharedCluster(b)
	benchOnce.Do(func() {
		c.Exec(b, "select pg_switch_wal()")
		benchStart = lsnOf(b, c, "select pg_current_wal_lsn()")
		c.Exec(b, "create table bench_wal as select g, repeat(md5(g::text), 4) as t from generate_series(1, 700000) g")
		c.Exec(b, "select pg_switch_wal()")
		benchEnd = lsnOf(b, c, "select pg_current_wal_lsn()")
		b.Logf("WAL from %s to %s", benchStart, benchEnd)
	})
	ctx := context.Background()
	var bytes, msgs, mallocs int64
	var elapsed time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		r, err := Connect(ctx, connCfg(b, c, "", 0))
		if err != nil {
			b.Fatal(err)
		}
		if err := r.PrepareSlot(ctx); err != nil {
			b.Fatal(err)
		}
		ring := ringbuf.New(ringbuf.DefaultSlots)
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				seg, err := ring.Take(ctx)
				if err != nil {
					return
				}
				ring.Release(seg)
			}
		}()
		r.SetEnd(benchEnd, 1)
		var ms0, ms1 runtime.MemStats
		runtime.ReadMemStats(&ms0)
		b.StartTimer()
		t0 := time.Now()
		if err := r.Stream(ctx, ring, benchStart, 1, ""); err != nil {
			b.Fatal(err)
		}
		elapsed += time.Since(t0)
		b.StopTimer()
		runtime.ReadMemStats(&ms1)
		<-done
		st := r.Stats()
		bytes += st.ReceivedBytes
		msgs += st.Messages
		mallocs += int64(ms1.Mallocs - ms0.Mallocs)
		r.Close()
		b.StartTimer()
	}
	b.StopTimer()
	b.SetBytes(bytes / int64(b.N))
	b.ReportMetric(float64(bytes)/elapsed.Seconds()/(1<<20), "MB/s")
	b.ReportMetric(float64(msgs)/float64(b.N), "msgs/op")
	b.ReportMetric(float64(mallocs)/float64(msgs), "allocs/msg")
}

// TestXLogDataNoAllocs: copying an XLogData payload into the current segment does not allocate.
func TestXLogDataNoAllocs(t *testing.T) {
	const segSize = 16 << 20
	ring := ringbuf.New(2)
	r := &Receiver{segSize: segSize, received: 0x3000000, tli: 1}
	data := make([]byte, 8192)
	msg := make([]byte, pgrepl.XLogDataHeaderLen+len(data))
	msg[0] = pgrepl.XLogDataByte
	ctx := context.Background()
	n := testing.AllocsPerRun(500, func() {
		x, err := pgrepl.ParseXLogData(msg)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.handleXLogData(ctx, ring, r.received, x.Data); err != nil {
			t.Fatal(err)
		}
	})
	if n != 0 {
		t.Fatalf("%v allocations per XLogData message", n)
	}
	if r.received != 0x3000000+501*8192 {
		t.Fatalf("received %s", r.received)
	}
	// A gap is an error.
	if err := r.handleXLogData(ctx, ring, r.received+8, data); err == nil {
		t.Fatal("gap accepted")
	}
}
