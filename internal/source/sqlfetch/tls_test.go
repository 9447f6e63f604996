package sqlfetch_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walweave/walweave/internal/pgtest"
	"github.com/walweave/walweave/mux"
)

// TestJobsOverTLS: the readers take their connections over from pgconn after the TLS
// handshake (the socket under TLS batched, TLS read by the readers' own protocol): a --jobs
// backup over verify-full restores and passes the drill.
func TestJobsOverTLS(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{TLS: true})
	for _, fn := range []string{"pg_backup_start(text, boolean)", "pg_backup_stop(boolean)", "pg_ls_dir(text, boolean, boolean)",
		"pg_stat_file(text, boolean)", "pg_read_binary_file(text, bigint, bigint, boolean)"} {
		c.Exec(t, "grant execute on function pg_catalog."+fn+" to "+pgtest.ReplicationUser)
	}
	c.Exec(t, "create table t as select g, md5(g::text) from generate_series(1, 200000) g")
	dsn := strings.Replace(c.DSN(), "sslmode=require", "sslmode=verify-full sslrootcert="+c.CAFile, 1)
	dsn = strings.Replace(dsn, "host=127.0.0.1", "host=localhost", 1)
	if !strings.Contains(dsn, "verify-full") {
		t.Fatalf("the cluster's DSN %q has no sslmode=require to tighten", c.DSN())
	}
	path := filepath.Join(t.TempDir(), "backup.tar")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	res, err := mux.Backup(context.Background(), f, mux.Config{ConnString: dsn, Checkpoint: mux.CheckpointFast, Jobs: 3})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("--jobs 3 over verify-full: %v", err)
	}
	t.Logf("%d bytes", res.BytesWritten)
	c.RestoreDrill(t, path, pgtest.Drill{})
}
