package restore_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/exec"

	"github.com/walweave/walweave/restore"
)

// Restore a chain: the full backup from a file, then two incremental backups, the last one
// decompressed from a pipe as it is downloaded. Each stream is read once; nothing is staged.
func ExampleChain() {
	full, err := os.Open("/backups/full.tar")
	if err != nil {
		log.Fatal(err)
	}
	defer full.Close()
	inc1, err := os.Open("/backups/inc1.tar")
	if err != nil {
		log.Fatal(err)
	}
	defer inc1.Close()
	dl := exec.Command("sh", "-c", "aws s3 cp s3://bucket/inc2.tar.zst - | zstd -dc")
	inc2, err := dl.StdoutPipe()
	if err != nil {
		log.Fatal(err)
	}
	if err := dl.Start(); err != nil {
		log.Fatal(err)
	}
	cr, err := restore.Chain(context.Background(), []restore.ChainStream{
		{Name: "full.tar", R: full},
		{Name: "inc1.tar", R: inc1},
		{Name: "inc2.tar.zst", R: inc2},
	}, restore.Options{Dir: "/var/lib/postgresql/17/restored"})
	if err != nil {
		log.Fatal(err) // a chain that does not link, a damaged stream: nothing left behind
	}
	if err := dl.Wait(); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d INCREMENTAL files applied, %d files replaced, %d removed\n", cr.Patched, cr.Replaced, cr.Removed)
}
