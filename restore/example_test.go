package restore_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"

	fixture "github.com/walweave/walweave/internal/verifytest"
	"github.com/walweave/walweave/restore"
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

// The owner walweave restore gives the files when it runs as root without --owner: the
// owner of the target directory (or of the directory it is created in) when that is not
// root, else the owner recorded in the stream, as tar -x run as root does.
func ExampleChooseOwner() {
	f, err := os.Open("base.tar")
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	head := make([]byte, restore.OwnerHeadSize) // the first member's header(s)
	n, _ := io.ReadFull(f, head)
	if o, desc, ok := restore.ChooseOwner("/var/lib/postgresql/17/main", head[:n]); ok {
		fmt.Println("files owned by", desc)
		_ = o // restore.Options.Owner = &o
	}
}
