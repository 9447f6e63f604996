package basebackup

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/walweave/walweave/internal/pgrepl"
	"github.com/walweave/walweave/internal/pgtest"
)

// TestStartAfterSlowWrite: every write pgconn makes while the connection is opened and
// described stalls, which leaves pgconn's background reader blocked in a Read of the socket
// (sqlfetch's TestTakeOverAfterSlowWrite says how). The BASE_BACKUP stream read after the
// take-over must still be whole: every member read to its end, the backup ended.
func TestStartAfterSlowWrite(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{})
	cfg, err := pgrepl.ParseConfig(c.DSN())
	if err != nil {
		t.Fatal(err)
	}
	fast := pgtest.SlowWrites(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b := New(Config{ConnConfig: cfg, Label: "stall", Checkpoint: "fast", ManifestChecksums: "CRC32C"})
	defer b.Close()
	if _, err := b.Open(ctx); err != nil {
		t.Fatal(err)
	}
	fast()
	if _, err := b.Start(ctx, nil); err != nil {
		t.Fatalf("start after slow writes: %v", err)
	}
	members := 0
	for {
		m, err := b.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("member %d: %v", members, err)
		}
		if m.Data != nil {
			if n, err := io.Copy(io.Discard, m.Data); err != nil || n != m.Header.Size {
				t.Fatalf("%s: %d of %d bytes: %v", m.Header.Name, n, m.Header.Size, err)
			}
		}
		members++
	}
	if _, err := b.End(ctx); err != nil {
		t.Fatalf("end after %d members: %v", members, err)
	}
	if members < 100 {
		t.Fatalf("%d members, want a whole data directory", members)
	}
}
