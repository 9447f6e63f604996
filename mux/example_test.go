package mux_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/walweave/walweave/mux"
)

// Back up a server into a file. The connection string needs a role with the REPLICATION
// attribute; walweave adds replication=true itself. (Not run by go test: it needs a server.)
func ExampleBackup() {
	f, err := os.Create("base.tar")
	if err != nil {
		log.Fatal(err)
	}
	res, err := mux.Backup(context.Background(), f, mux.Config{
		ConnString: "host=db.example port=5432 user=backup",
		Checkpoint: mux.CheckpointFast,
	})
	if err != nil {
		f.Close()
		os.Remove("base.tar") // a failed stream is unfinished: do not keep it
		log.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		log.Fatal(err)
	}
	if err := f.Close(); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("backup %s..%s, %d WAL segments woven in\n", res.StartLSN, res.EndLSN, res.WALSegments)
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
