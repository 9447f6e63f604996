package walarchive_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"

	"github.com/walweave/walweave/walarchive"
)

// An archiver into a local directory, stopped by SIGINT. An agent's own Sink (an object store
// client) goes in place of the DirSink.
func Example() {
	sink, err := walarchive.NewDirSink(os.TempDir() + "/wal-archive")
	if err != nil {
		fmt.Println(err)
		return
	}
	a, err := walarchive.New(walarchive.Config{
		ConnString:  os.Getenv("WALWEAVE_EXAMPLE_DSN"),
		Slot:        "walweave_archive",
		CreateSlot:  true,
		Sink:        sink,
		Compression: walarchive.Compression{Algorithm: walarchive.Zstd},
		Logger:      slog.Default(),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	if os.Getenv("WALWEAVE_EXAMPLE_DSN") == "" {
		fmt.Println("archiver configured for slot walweave_archive")
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := a.Run(ctx); err != nil {
		fmt.Println(err)
	}
	// Output: archiver configured for slot walweave_archive
}

// restore_command's helper: not found (the end of the archive for recovery) is told apart from
// a failure.
func ExampleGet() {
	err := walarchive.Get(context.Background(), walarchive.DirSource{Dir: os.TempDir()}, "00000001000000FF000000FE", os.TempDir()+"/RECOVERYXLOG")
	switch {
	case errors.Is(err, walarchive.ErrNotFound):
		fmt.Println("not in the archive: exit 1")
	case err != nil:
		fmt.Println("failure: exit above 125")
	default:
		fmt.Println("restored")
	}
	// Output: not in the archive: exit 1
}
