package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/walweave/walweave/internal/pgtest"
)

func TestBackupAndUpload(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{})
	c.PgbenchInit(t, 1)
	// The example uses the default spread checkpoint; with pgbench's pages still dirty it would
	// be paced over minutes. A checkpoint first leaves it nothing to write.
	c.Exec(t, "checkpoint")
	path := filepath.Join(t.TempDir(), "base.tar")
	sum, n, err := backupAndUpload(context.Background(), c.DSN(), path)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(data)
	if int64(len(data)) != n || hex.EncodeToString(h[:]) != sum {
		t.Fatalf("uploaded %d bytes with sha256 %s; file has %d bytes, %x", n, sum, len(data), h)
	}
	c.RestoreDrill(t, path, pgtest.Drill{Pgbench: true})

	// A failing backup fails the upload and leaves nothing.
	bad := filepath.Join(t.TempDir(), "bad.tar")
	if _, _, err := backupAndUpload(context.Background(), "host=127.0.0.1 port=1 connect_timeout=2", bad); err == nil {
		t.Fatal("no error for an unreachable server")
	}
	if _, err := os.Stat(bad); !os.IsNotExist(err) {
		t.Fatalf("%s left behind", bad)
	}
}
