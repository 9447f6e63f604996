// Command progress backs up to stdout and reports progress and the library's own logs with
// log/slog on stderr.
//
//	go run ./examples/progress -d "host=db user=backup" > base.tar
package main

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"time"

	"github.com/walweave/walweave/mux"
)

func main() {
	dsn := flag.String("d", "", "connection string (role with REPLICATION)")
	flag.Parse()
	logger := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	res, err := mux.Backup(context.Background(), os.Stdout, mux.Config{
		ConnString:       *dsn,
		Checkpoint:       mux.CheckpointFast,
		Logger:           logger,
		ProgressInterval: 2 * time.Second,
		Progress: func(p mux.Progress) {
			logger.Info("progress", "phase", string(p.Phase), "bytes_done", p.BytesDone, "total", p.TotalBytes,
				"written", p.BytesWritten, "wal_segments", p.WALSegments, "ring", p.RingOccupancy)
		},
	})
	if err != nil {
		logger.Error("backup failed", "err", err)
		os.Exit(1)
	}
	logger.Info("backup complete", "start_lsn", res.StartLSN.String(), "end_lsn", res.EndLSN.String(),
		"bytes", res.BytesWritten, "wal_segments", res.WALSegments, "duration", res.Duration)
}
