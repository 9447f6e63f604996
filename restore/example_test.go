package restore_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"

	"github.com/walweave/walweave/restore"
)

// Restore a stream from standard input as a standby, with its tablespace moved.
func ExampleExtract() {
	rep, err := restore.Extract(context.Background(), os.Stdin, restore.Options{
		Dir:           "/var/lib/postgresql/15/restored",
		TablespaceMap: map[string]string{"/srv/ts1": "/srv/ts1-restored"},
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
	fmt.Print(rep)
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
	head := make([]byte, 512) // the first tar header
	n, _ := io.ReadFull(f, head)
	if o, desc, ok := restore.ChooseOwner("/var/lib/postgresql/17/main", head[:n]); ok {
		fmt.Println("files owned by", desc)
		_ = o // restore.Options.Owner = &o
	}
}
