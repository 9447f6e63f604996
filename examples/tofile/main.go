// Command tofile backs up a server into a file, the way walweave backup -o does: the stream
// goes to FILE.tmp, which is fsynced and renamed only when the backup is complete.
//
//	go run ./examples/tofile -d "host=db user=backup" -o base.tar
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"

	"github.com/walweave/walweave/mux"
)

func main() {
	dsn := flag.String("d", "", "connection string (role with REPLICATION)")
	out := flag.String("o", "base.tar", "output file")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	if err := backupToFile(ctx, *dsn, *out); err != nil {
		log.Fatal(err)
	}
}

func backupToFile(ctx context.Context, dsn, path string) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	res, err := mux.Backup(ctx, f, mux.Config{ConnString: dsn, Checkpoint: mux.CheckpointFast})
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp) // an unfinished stream is not a backup
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	fmt.Printf("%s: %d bytes, WAL %s..%s, %d segments woven in\n", path, res.BytesWritten, res.StartLSN, res.EndLSN, res.WALSegments)
	return nil
}
