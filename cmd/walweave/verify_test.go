package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walweave/walweave/internal/pgtest"
)

// TestVerifyAndRestoreCLI: a stream made by the CLI from a cluster with a tablespace passes
// walweave verify; walweave restore -T puts the tablespace in a directory of its own and
// the copy passes pg_verifybackup and starts; a flipped byte fails both verify and restore.
func TestVerifyAndRestoreCLI(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{})
	_, loc := c.CreateTablespace(t, "ts1")
	c.Exec(t, "create table in_ts (i int) tablespace ts1; insert into in_ts select generate_series(1, 777)")
	c.PgbenchInit(t, 1)
	out := filepath.Join(t.TempDir(), "b.tar")
	if _, stderr, code := walweave(t, context.Background(), nil, "backup", "-d", c.DSN(), "-c", "fast", "-o", out); code != 0 {
		t.Fatalf("backup: exit %d: %s", code, stderr)
	}
	if stdout, stderr, code := walweave(t, context.Background(), nil, "verify", out); code != 0 {
		t.Fatalf("verify: exit %d: %s %s", code, stdout, stderr)
	}

	dir, err := c.NewDir("restored")
	if err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	newTS := filepath.Join(dir, "ts1")
	if stdout, stderr, code := walweave(t, context.Background(), nil, "restore", "-D", data, "-T", loc+"="+newTS, out); code != 0 {
		t.Fatalf("restore: exit %d: %s %s", code, stdout, stderr)
	}
	if target, err := os.Readlink(filepath.Join(data, "pg_tblspc", c.QueryValue(t, "select oid from pg_tablespace where spcname = 'ts1'"))); err != nil || target != newTS {
		t.Fatalf("pg_tblspc link: %q, %v", target, err)
	}
	conf, _ := os.ReadFile(filepath.Join(data, "postgresql.auto.conf"))
	if strings.Contains(string(conf), "allow_in_place_tablespaces") {
		t.Fatalf("allow_in_place_tablespaces left after relocation:\n%s", conf)
	}
	if err := pgtest.Chown(dir); err != nil {
		t.Fatal(err)
	}
	c.VerifyBackup(t, data)
	r := pgtest.StartOn(t, data, nil)
	if got := r.QueryValue(t, "select count(*) from in_ts"); got != "777" {
		t.Fatalf("tablespace table on the restored copy: %s rows", got)
	}
	if got := r.QueryValue(t, pgtest.Invariant); got != "true" {
		t.Fatal("pgbench invariant does not hold")
	}

	// One flipped byte in a data file: both commands refuse the stream.
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	i := strings.Index(string(b), "PG_VERSION")
	if i < 0 {
		t.Fatal("no PG_VERSION member")
	}
	b[i+512+512-512+1] ^= 0x01 // first data byte block after the header holds "15\n"
	bad := filepath.Join(t.TempDir(), "bad.tar")
	if err := os.WriteFile(bad, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if stdout, _, code := walweave(t, context.Background(), nil, "verify", bad); code != 1 || !strings.Contains(stdout, "PG_VERSION") {
		t.Fatalf("verify of a corrupt stream: exit %d, %s", code, stdout)
	}
	dir2 := filepath.Join(t.TempDir(), "r2")
	if _, _, code := walweave(t, context.Background(), nil, "restore", "-D", dir2, bad); code != 1 {
		t.Fatalf("restore of a corrupt stream: exit %d", code)
	}
	if entries, _ := os.ReadDir(dir2); len(entries) != 0 {
		t.Fatalf("restore left %d entries behind", len(entries))
	}
}
