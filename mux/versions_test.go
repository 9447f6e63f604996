package mux_test

import (
	"context"
	"strings"
	"testing"

	"github.com/walweave/walweave/internal/pgtest"
	"github.com/walweave/walweave/mux"
)

// TestInPlaceTablespace backs up a cluster with an in-place tablespace (a directory under
// pg_tblspc/, what a restored walweave backup has). PostgreSQL 15 sends its files inside
// base.tar; 16 and later send it as its own archive with the relative location
// pg_tblspc/<oid>. Either way the stream holds it under pg_tblspc/<oid>/ and the copy restores.
func TestInPlaceTablespace(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{Settings: map[string]string{"allow_in_place_tablespaces": "on"}})
	c.Exec(t, "create tablespace inplace location ''")
	c.Exec(t, "create table ip_table tablespace inplace as select g as i from generate_series(1, 777) g")
	oid := c.QueryValue(t, "select oid from pg_tablespace where spcname = 'inplace'")
	if loc := c.QueryValue(t, "select pg_tablespace_location($1::oid)", oid); loc != "pg_tblspc/"+oid {
		t.Fatalf("in-place tablespace location %q", loc)
	}
	path, res, err := backupToFile(t, context.Background(), nil, mux.Config{ConnString: c.DSN(), Checkpoint: mux.CheckpointFast})
	if err != nil {
		t.Fatal(err)
	}
	want := 0
	if c.Version >= 16 {
		want = 1
	}
	if res.Tablespaces != want {
		t.Fatalf("%s: %d tablespace archives, want %d", c.Server, res.Tablespaces, want)
	}
	files := 0
	for _, m := range pgtest.ListTar(t, path) {
		if strings.HasPrefix(m.Name, "pg_tblspc/"+oid+"/PG_") {
			files++
		}
	}
	if files == 0 {
		t.Fatalf("no pg_tblspc/%s/PG_* members in the stream", oid)
	}
	t.Logf("%s: %d tablespace archive(s), %d members under pg_tblspc/%s", c.Server, res.Tablespaces, files, oid)
	c.RestoreDrill(t, path, pgtest.Drill{Queries: map[string]string{
		"select count(*) from ip_table": "777",
		"select pg_tablespace_location(oid) from pg_tablespace where spcname = 'inplace'": "pg_tblspc/" + oid,
	}})
}

// TestChecksumDefaults: the harness initialises with data checksums, and without them when
// asked (initdb --no-data-checksums on 18, whose default is on); a backup of either restores,
// and the server verifies pages only when checksums are on.
func TestChecksumDefaults(t *testing.T) {
	for _, off := range []bool{false, true} {
		c := pgtest.Start(t, pgtest.Options{NoChecksums: off})
		want := map[bool]string{false: "on", true: "off"}[off]
		if got := c.QueryValue(t, "current_setting('data_checksums')"); got != want {
			t.Fatalf("NoChecksums=%v: data_checksums = %s", off, got)
		}
		c.Exec(t, "create table t as select g from generate_series(1, 1000) g")
		path, _, err := backupToFile(t, context.Background(), nil, mux.Config{ConnString: c.DSN(), Checkpoint: mux.CheckpointFast})
		if err != nil {
			t.Fatalf("data_checksums=%s: %v", want, err)
		}
		c.RestoreDrill(t, path, pgtest.Drill{Queries: map[string]string{
			"current_setting('data_checksums')": want,
			"select count(*) from t":            "1000",
		}})
	}
}
