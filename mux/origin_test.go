package mux_test

import (
	"archive/tar"
	"io"
	"os"
	"strconv"
	"testing"

	"github.com/walweave/walweave/internal/pgtest"
	"github.com/walweave/walweave/pgformat"
)

// checkOrigin checks that the stream's backup_label carries the PAX comment naming the
// cluster it was taken from (pgformat.BackupOrigin): the server's system identifier and
// server_version_num, as the server itself reports them.
func checkOrigin(t *testing.T, c *pgtest.Cluster, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := pgformat.BackupOrigin{}
	if want.SystemID, err = strconv.ParseUint(c.QueryValue(t, "select system_identifier from pg_control_system()"), 10, 64); err != nil {
		t.Fatal(err)
	}
	if want.ServerVersion, err = strconv.Atoi(c.QueryValue(t, "select current_setting('server_version_num')")); err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			t.Fatal("no backup_label in the stream")
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Name != "backup_label" {
			continue
		}
		got, ok := pgformat.ParseBackupOrigin(h.PAXRecords["comment"])
		if !ok || got != want {
			t.Fatalf("backup_label's comment %q (%+v), want %q", h.PAXRecords["comment"], got, want.String())
		}
		return
	}
}
