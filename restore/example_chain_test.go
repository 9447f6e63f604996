package restore_test

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	fixture "github.com/walweave/walweave/internal/verifytest"
	"github.com/walweave/walweave/restore"
	"github.com/walweave/walweave/verify"
)

// Restore a chain: the full backup, then an incremental one taken on top of it (PostgreSQL
// 17+). Each stream is read once, in order, and nothing is staged: in real use they come from
// files or from pipes as they are downloaded. The streams here are synthetic (from memory,
// with WAL that is not checked).
func ExampleChain() {
	full, inc := exampleChain()
	dir, _ := os.MkdirTemp("", "walweave-example")
	defer os.RemoveAll(dir)

	cr, err := restore.Chain(context.Background(), []restore.ChainStream{
		{Name: "full.tar", R: bytes.NewReader(full)},
		{Name: "inc1.tar", R: bytes.NewReader(inc)},
	}, restore.Options{Dir: filepath.Join(dir, "restored"), Verify: verify.Options{SkipWAL: true}})
	if err != nil {
		log.Fatal(err) // a chain that does not link, a damaged stream: nothing left behind
	}
	fmt.Printf("%d INCREMENTAL files applied, %d files replaced, %d removed\n", cr.Patched, cr.Replaced, cr.Removed)
	// Output: 2 INCREMENTAL files applied, 3 files replaced, 1 removed
}

// exampleChain builds a full backup and an incremental one on top of it.
func exampleChain() (full, inc []byte) {
	f := &fixture.Chain17{Start: 0x2000028}
	f.Add("base/5/16384", fixture.Blocks("abc"))
	f.Add("base/5/16385", fixture.Blocks("de"))
	f.Add("base/5/16386", fixture.Blocks("g"))
	i := &fixture.Chain17{Start: 0x4000028, From: 0x2000028}
	i.Add("base/5/INCREMENTAL.16384", fixture.IncrementalFile(3, []uint32{1, 3}, "BD"))
	i.Add("base/5/INCREMENTAL.16385", fixture.IncrementalFile(1, nil, ""))
	i.Add("base/5/16388", fixture.Blocks("n"))
	fs, err := f.Stream()
	if err != nil {
		log.Fatal(err)
	}
	is, err := i.Stream()
	if err != nil {
		log.Fatal(err)
	}
	return fs.Bytes(), is.Bytes()
}
