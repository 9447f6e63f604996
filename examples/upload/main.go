// Command upload shows walweave feeding an uploader-style consumer through io.Pipe while
// computing the SHA-256 of the stream: the consumer here stores the stream in a file in
// chunks, as an object-store multipart upload would, and records the digest next to it.
//
//	go run ./examples/upload -d "host=db user=backup" -o base.tar
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"

	"github.com/walweave/walweave/mux"
)

func main() {
	dsn := flag.String("d", "", "connection string (role with REPLICATION)")
	out := flag.String("o", "base.tar", "where the \"uploader\" stores the stream")
	flag.Parse()
	sum, n, err := backupAndUpload(context.Background(), *dsn, *out)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("uploaded %d bytes, sha256 %s\n", n, sum)
}

// backupAndUpload runs the backup in one goroutine and the upload in this one. A failing
// upload fails the backup (the pipe's writer gets the error), and a failing backup fails
// the upload (the reader gets it), so neither side is left hanging.
func backupAndUpload(ctx context.Context, dsn, path string) (string, int64, error) {
	pr, pw := io.Pipe()
	hash := sha256.New()
	backupDone := make(chan error, 1)
	go func() {
		_, err := mux.Backup(ctx, io.MultiWriter(pw, hash), mux.Config{ConnString: dsn})
		pw.CloseWithError(err) // nil: the reader sees EOF after the last byte
		backupDone <- err
	}()
	n, upErr := upload(pr, path)
	if upErr != nil {
		pr.CloseWithError(upErr)
	}
	backupErr := <-backupDone
	if err := errors.Join(backupErr, upErr); err != nil {
		os.Remove(path)
		return "", 0, err
	}
	sum := hex.EncodeToString(hash.Sum(nil))
	return sum, n, os.WriteFile(path+".sha256", []byte(sum+"  "+path+"\n"), 0o600)
}

// upload stands in for an object-store client: it consumes the stream in 8 MiB parts.
func upload(r io.Reader, path string) (int64, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	part := make([]byte, 8<<20)
	var total int64
	for {
		n, err := io.ReadFull(r, part)
		if n > 0 {
			if _, werr := f.Write(part[:n]); werr != nil {
				return total, werr
			}
			total += int64(n)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return total, f.Sync()
		}
		if err != nil {
			return total, err
		}
	}
}
