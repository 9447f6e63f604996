package mux_test

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/walweave/walweave/mux"
	"github.com/walweave/walweave/verify"
)

// Back up a server into a file, then check the file. The connection string needs a role with
// the REPLICATION attribute; walweave adds replication=true itself. A failed backup leaves an
// unfinished stream: remove it.
func ExampleBackup() {
	dsn, stop := scratchServer() // in real use: "host=db.example user=backup"
	defer stop()
	dir, _ := os.MkdirTemp("", "walweave-example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "base.tar")

	f, err := os.Create(path)
	if err != nil {
		log.Fatal(err)
	}
	res, err := mux.Backup(context.Background(), f, mux.Config{ConnString: dsn, Checkpoint: mux.CheckpointFast})
	if err != nil {
		f.Close()
		os.Remove(path) // a failed stream is unfinished: do not keep it
		log.Fatalf("%v (%s)", err, mux.Hint(err))
	}
	if err := f.Sync(); err != nil {
		log.Fatal(err)
	}
	if err := f.Close(); err != nil {
		log.Fatal(err)
	}
	fmt.Println("WAL woven in:", res.WALSegments > 0, "manifest kept:", len(res.Manifest) > 0)

	in, err := os.Open(path)
	if err != nil {
		log.Fatal(err)
	}
	defer in.Close()
	rep, err := verify.Stream(context.Background(), in, verify.Options{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("stream verified:", rep.OK())
	// Output:
	// WAL woven in: true manifest kept: true
	// stream verified: true
}

// A backup in phases: between the data and the rest of the WAL the caller writes a restore
// point and has the stream's WAL reach it, and recovery of the restored copy stop there.
func ExampleSession() {
	dsn, stop := scratchServer()
	defer stop()
	ctx := context.Background()
	var out bytes.Buffer
	s, err := mux.Start(ctx, &out, mux.Config{ConnString: dsn, Checkpoint: mux.CheckpointFast})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close() // always: aborts an unfinished backup (from any goroutine, too)
	end, err := s.CopyData(ctx)
	if err != nil {
		log.Fatal(err)
	}
	point, err := createRestorePoint(ctx, "example") // as a superuser: SELECT pg_create_restore_point('example')
	if err != nil {
		log.Fatal(err)
	}
	if err := s.ExtendWAL(point); err != nil {
		log.Fatal(err)
	}
	if err := s.AppendRecoveryConf("restore_command = 'false'\nrecovery_target_name = 'example'"); err != nil {
		log.Fatal(err)
	}
	res, err := s.Finish(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("restore point after the data:", point > end.EndLSN)
	fmt.Println("stream complete:", res.BytesWritten == int64(out.Len()))
	// Output:
	// restore point after the data: true
	// stream complete: true
}

// Check a configuration before connecting, for example one built from user input: server-side
// compression takes lz4 with an optional level, or zstd with a level and server threads.
func ExampleConfig_Validate() {
	for _, comp := range []string{"lz4", "lz4:9", "zstd:level=3,workers=4", "gzip"} {
		cfg := mux.Config{ConnString: "host=db.example user=backup", ServerCompression: comp}
		if err := cfg.Validate(); err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Printf("%s: ok\n", comp)
	}
	// Output:
	// lz4: ok
	// lz4:9: ok
	// zstd:level=3,workers=4: ok
	// mux: server compression "gzip": walweave decompresses lz4 and zstd from the server, not gzip; use zstd or lz4 (and compress the output stream with any tool)
}
