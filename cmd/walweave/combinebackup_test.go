package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walweave/walweave/internal/pgtest"
)

// TestChainThroughPGCombinebackup: PostgreSQL's own pg_combinebackup (of the server's version:
// 17's from scripts/setup-pg17-tools.sh, 18's from scripts/setup-pg18-src.sh) combines
// walweave's full and incremental streams, each extracted by GNU tar, and PostgreSQL starts on
// the result: it reaches consistency, passes pg_amcheck and pgbench's invariant and has the
// last incremental's data. The combined directory is checked by pg_verifybackup of the same
// version first (WAL included). walweave's restore code plays no part.
func TestChainThroughPGCombinebackup(t *testing.T) {
	c := startIncremental(t)
	combine, ok := c.Tool("pg_combinebackup")
	if !ok {
		missing := fmt.Sprintf("no pg_combinebackup %d is installed", c.Version)
		if setup, named := pgtest.OracleSetup[c.Version]; named {
			missing += " (install it with " + setup + ")"
			if pgtest.RequireOracle() {
				t.Fatalf("%s: WALWEAVE_REQUIRE_PG=1, a missing oracle is a failure", missing)
			}
		}
		t.Skipf("%s; walweave's own chain restore is tested by TestIncrementalChainDrill", missing)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dir := t.TempDir()
	c.PgbenchInit(t, 2)
	c.Exec(t, "create table before_full as select g from generate_series(1, 1000) g")
	full, inc := filepath.Join(dir, "full.tar"), filepath.Join(dir, "inc.tar")
	backupCLI(t, c, full)

	load := c.StartLoad(t, 2)
	c.Exec(t, "create table after_full as select g, md5(g::text) v from generate_series(1, 20000) g")
	c.Exec(t, "delete from before_full where g > 500")
	backupCLI(t, c, inc, "--incremental", full)
	if err := load.Stop(); err != nil {
		t.Fatal(err)
	}

	fullDir, incDir := c.Extract(t, full), c.Extract(t, inc)
	base, err := c.NewDir("combined")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(base, "data")
	o, err := c.Run(ctx, filepath.Join(combine.BinDir, "pg_combinebackup"), fullDir, incDir, "-o", out)
	if err != nil {
		t.Fatalf("pg_combinebackup %s refused walweave's chain: %v", combine.Version, err)
	}
	t.Logf("pg_combinebackup %s: combined %s and %s %s", combine.Version, filepath.Base(full), filepath.Base(inc), strings.TrimSpace(o))
	if v := c.VerifyBackup(t, out); v != "" {
		t.Logf("pg_verifybackup on the combined directory: %s", strings.TrimSpace(v))
	}
	r := pgtest.StartOn(t, out, nil)
	r.Password, r.ReplPassword = c.Password, c.ReplPassword
	r.CheckCopy(t, true, map[string]string{
		"select count(*) from after_full":  "20000",
		"select count(*) from before_full": "500",
		"select pg_is_in_recovery()":       "false",
	})
}
