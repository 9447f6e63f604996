package walstream_test

import (
	"context"
	"errors"
	"io"
	"log"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/walweave/walweave/ringbuf"
	"github.com/walweave/walweave/walstream"
)

// Example writes the WAL segment holding the server's current position into a directory, the
// way a backup streams its WAL: connect, make the slot, stream into a ring on one goroutine and
// drain the ring on another, and tell the receiver where to stop.
//
// It needs a running PostgreSQL 15+ server (PGHOST, PGUSER, ... or a .pgpass), so it is only
// compiled, not run, by go test.
func Example() {
	ctx := context.Background()
	cfg, err := walstream.ParseConfig("") // PG* environment variables
	if err != nil {
		log.Fatal(err)
	}
	r, err := walstream.Connect(ctx, walstream.Config{
		ConnConfig: cfg,
		Logger:     slog.New(slog.NewTextHandler(os.Stderr, nil)),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	// A backup makes the slot before BASE_BACKUP starts on its other connection.
	if err := r.PrepareSlot(ctx); err != nil {
		log.Fatal(err)
	}

	// A backup streams from its start LSN and learns the end when BASE_BACKUP ends; here both
	// are the position IDENTIFY_SYSTEM reported.
	start, tli := r.XLogPos(), r.Timeline()
	ring := ringbuf.New(ringbuf.DefaultSlots)
	done := make(chan error, 1)
	go func() { done <- r.Stream(ctx, ring, start, tli, r.SystemID()) }()
	r.SetEnd(start, tli)

	dir, err := os.MkdirTemp("", "pg_wal")
	if err != nil {
		log.Fatal(err)
	}
	for {
		seg, err := ring.Take(ctx)
		if errors.Is(err, io.EOF) {
			break // Stream closed the ring: everything up to the end is there
		}
		if err != nil {
			log.Fatal(err) // the stream failed; Stream returns the same error
		}
		if err := os.WriteFile(filepath.Join(dir, seg.Name), seg.Data, 0o600); err != nil {
			ring.Abort(err) // makes a blocked Push, and so Stream, return
			log.Fatal(err)
		}
		ring.Release(seg)
	}
	if err := <-done; err != nil {
		log.Fatal(err)
	}
	log.Printf("WAL up to %s is in %s", start, dir)
}
