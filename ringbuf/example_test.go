package ringbuf_test

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/walweave/walweave/ringbuf"
)

// A WAL receiver goroutine pushes complete segments; the backup writer drains the ring at a
// member boundary with TryTakeAll, then waits for the rest with Take until io.EOF.
func Example() {
	const segSize = 64 // 16 MiB in real life
	ctx := context.Background()
	r := ringbuf.New(2)

	go func() { // producer: the WAL receiver
		for i := range 4 {
			seg := r.NewSegment()
			seg.Kind = ringbuf.KindSegment
			seg.Name = fmt.Sprintf("%08X%08X%08X", 1, 0, i+3)
			seg.Timeline = 1
			seg.StartLSN = uint64(i+3) * segSize
			seg.Data = r.Buffer(segSize)
			// ... copy XLogData into seg.Data ...
			keepalive := func() error { return nil } // send a standby status update
			if err := r.Push(ctx, seg, 10*time.Second, keepalive); err != nil {
				r.Close(err)
				return
			}
		}
		r.Close(nil) // end LSN reached
	}()

	// consumer: the backup writer
	write := func(seg *ringbuf.Segment) {
		fmt.Printf("pg_wal/%s (%d bytes)\n", seg.Name, len(seg.Data))
		r.Release(seg)
	}
	var batch []*ringbuf.Segment
	batch = r.TryTakeAll(batch[:0]) // at a data file boundary: whatever is ready, maybe nothing
	for _, seg := range batch {
		write(seg)
	}
	for { // after the last data file: wait for the end of the WAL
		seg, err := r.Take(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			fmt.Println("backup failed:", err)
			return
		}
		write(seg)
	}
	fmt.Println("pushed", r.Stats().Pushed)
	// Output:
	// pg_wal/000000010000000000000003 (64 bytes)
	// pg_wal/000000010000000000000004 (64 bytes)
	// pg_wal/000000010000000000000005 (64 bytes)
	// pg_wal/000000010000000000000006 (64 bytes)
	// pushed 4
}
