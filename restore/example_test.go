package restore_test

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/walweave/walweave/restore"
	fixture "github.com/walweave/walweave/verify/verifytest"
)

// Restore a stream as a standby of its primary. The stream is checked as it is written (its
// manifest, checksums and WAL); a damaged one leaves nothing behind. Here the stream is a
// synthetic one from memory; in real use, a file, a pipe or standard input.
func ExampleExtract() {
	stream := bytes.NewReader(fixture.Synth(fixture.SynthOptions{}).Bytes())
	dir, _ := os.MkdirTemp("", "walweave-example")
	defer os.RemoveAll(dir)
	data := filepath.Join(dir, "restored") // absent or empty

	rep, err := restore.Extract(context.Background(), stream, restore.Options{
		Dir: data,
		Recovery: &restore.RecoveryOptions{
			Standby:         true,
			PrimaryConnInfo: "host=primary user=replicator",
		},
	})
	if err != nil {
		if rep != nil {
			fmt.Fprint(os.Stderr, rep) // every problem found
		}
		log.Fatal(err) // nothing was left behind
	}
	_, serr := os.Stat(filepath.Join(data, "standby.signal"))
	fmt.Println("verified:", rep.OK(), "standby:", serr == nil)
	// Output: verified: true standby: true
}
