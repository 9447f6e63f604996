package restore_test

import (
	"context"
	"fmt"
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
