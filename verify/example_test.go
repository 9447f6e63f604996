package verify_test

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"os"

	fixture "github.com/walweave/walweave/internal/verifytest"
	"github.com/walweave/walweave/pgformat"
	"github.com/walweave/walweave/verify"
)

// Check a backup stream read from a file; with a file (seekable), SHA manifests are
// verified with a second read when needed. (The file here holds a synthetic stream.)
func ExampleStream() {
	path := exampleFile()
	defer os.Remove(path)

	f, err := os.Open(path)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	rep, err := verify.Stream(context.Background(), f, verify.Options{})
	if err != nil {
		log.Fatal(err) // reading failed
	}
	if !rep.OK() {
		fmt.Print(rep) // a summary, then one line per problem
		os.Exit(1)
	}
	fmt.Println("ok:", rep.WALSegments, "WAL segments from", rep.StartLSN, "to", rep.EndLSN)
	// Output: ok: 3 WAL segments from 0/3023B0 to 0/5F2608
}

// exampleFile writes a synthetic stream to a temporary file.
func exampleFile() string {
	f, err := os.CreateTemp("", "walweave-example-*.tar")
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	if _, err := fixture.Synth(fixture.SynthOptions{}).WriteTo(f); err != nil {
		log.Fatal(err)
	}
	return f.Name()
}

// A stream (here a synthetic one) that has lost a WAL segment.
func ExampleReport_Problems() {
	s := fixture.Synth(fixture.SynthOptions{})
	s.Remove(s.Segments()[1])
	rep, err := verify.Stream(context.Background(), bytes.NewReader(s.Bytes()), verify.Options{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(rep.OK())
	for _, p := range rep.Problems {
		fmt.Println(p.Path)
	}
	// Output:
	// false
	// pg_wal/000000010000000000000004
}

// Scan hands each safe member to a function while the checker checks it: here, list the
// WAL segments of a stream.
func ExampleChecker_Scan() {
	c, err := verify.NewChecker(verify.Options{})
	if err != nil {
		log.Fatal(err)
	}
	s := fixture.Synth(fixture.SynthOptions{})
	rep, err := c.Scan(context.Background(), bytes.NewReader(s.Bytes()), func(name string, h *tar.Header, content io.Reader) error {
		if len(name) == len("pg_wal/000000010000000000000003") && name[:7] == "pg_wal/" {
			fmt.Println(name, h.Size)
		}
		return nil // unread content is read (and checked) by Scan
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(rep.OK(), rep.StartLSN, rep.EndLSN)
	// Output:
	// pg_wal/000000010000000000000003 1048576
	// pg_wal/000000010000000000000004 1048576
	// pg_wal/000000010000000000000005 1048576
	// true 0/3023B0 0/5F2608
}

// A Checker fed by hand, for a caller with its own tar reader.
func ExampleNewChecker() {
	c, err := verify.NewChecker(verify.Options{Algorithm: pgformat.ChecksumSHA256})
	if err != nil {
		log.Fatal(err)
	}
	tr := tar.NewReader(bytes.NewReader(fixture.Synth(fixture.SynthOptions{}).Bytes()))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			c.EndOfArchive() // archive/tar also says io.EOF for a stream cut at a boundary: check the trailer yourself
			break
		}
		if err != nil {
			c.Abort(err.Error())
			break
		}
		_ = c.Begin(h) // an error means: do not extract this member
		if _, err := io.Copy(c, tr); err != nil {
			c.Abort(err.Error())
			break
		}
		c.End()
	}
	fmt.Println(c.Finish().OK())
	// Output: true
}
