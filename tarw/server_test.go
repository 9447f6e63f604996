package tarw

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/walweave/walweave/internal/pgtest"
)

// TestRealServerArchives round-trips archives a real PostgreSQL server sent for
// BASE_BACKUP (captured with pg_basebackup -Ft, which writes them as received), a tablespace
// archive and base.tar, through Reader and Writer; the output is read back by archive/tar,
// Python's tarfile and GNU tar. (pgtest.TarBackup sends the same BASE_BACKUP itself when the
// installed pg_basebackup is older than the server.)
func TestRealServerArchives(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{})
	oid, _ := c.CreateTablespace(t, "ts1")
	c.Exec(t, "create table in_ts (i int) tablespace ts1; insert into in_ts select generate_series(1, 1000)")
	dir, err := c.NewDir("captured")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := c.TarBackup(ctx, filepath.Join(dir, "out"), pgtest.TarBackupOptions{NoManifest: true}); err != nil {
		t.Fatal(err)
	}
	base, err := os.ReadFile(filepath.Join(dir, "out", "base.tar"))
	if err != nil {
		t.Fatal(err)
	}
	ts, err := os.ReadFile(filepath.Join(dir, "out", oid+".tar"))
	if err != nil {
		t.Fatal(err)
	}
	out := roundTrip(t, ts, base)
	if len(out) < len(base) {
		t.Fatalf("combined output (%d bytes) is smaller than base.tar (%d)", len(out), len(base))
	}
}
