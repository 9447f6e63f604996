package ringbuf

import (
	"context"
	"testing"
)

// BenchmarkPushTake runs a producer goroutine and a consumer goroutine through a default-size
// ring; the consumer takes with Take and drains the rest with TryTakeAll, like the backup writer.
func BenchmarkPushTake(b *testing.B) {
	for _, bc := range []struct {
		name string
		size int
	}{{"64B", 64}, {"16KiB", 16 << 10}} {
		b.Run(bc.name, func(b *testing.B) {
			ctx := context.Background()
			r := New(0)
			b.SetBytes(int64(bc.size))
			b.ReportAllocs()
			b.ResetTimer()
			go func() {
				for i := range b.N {
					s := r.NewSegment()
					s.Kind = KindSegment
					s.StartLSN = uint64(i)
					s.Data = r.Buffer(bc.size)
					s.Data[0] = byte(i)
					if err := r.Push(ctx, s, 0, nil); err != nil {
						panic(err)
					}
				}
				r.Close(nil)
			}()
			batch := make([]*Segment, 0, DefaultSlots)
			n := 0
			for {
				s, err := r.Take(ctx)
				if err != nil {
					break
				}
				batch = r.TryTakeAll(append(batch[:0], s))
				for _, s := range batch {
					if s.StartLSN != uint64(n) {
						b.Fatalf("got segment %d, want %d", s.StartLSN, n)
					}
					n++
					r.Release(s)
				}
			}
			if n != b.N {
				b.Fatalf("took %d of %d", n, b.N)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "segments/s")
		})
	}
}
