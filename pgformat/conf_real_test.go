package pgformat_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/walweave/walweave/internal/pgtest"
	"github.com/walweave/walweave/pgformat"
)

// Values with quotes and backslashes round-trip through PostgreSQL reading
// postgresql.auto.conf both ways: lines written with ConfLine are what the restarted server
// reports, and what ALTER SYSTEM writes reads back with ConfValue.
func TestConfQuotingThroughServer(t *testing.T) {
	pgtest.Require(t)
	c := pgtest.Start(t, pgtest.Options{})
	values := []string{"plain", "it's", `back\slash`, `a''b`, `\'`, `trailing\`, `C:\new\table`, "#hash", "= sign", `both ' and \`}
	path := filepath.Join(c.DataDir, "postgresql.auto.conf")
	conf, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range values {
		conf = append(conf, pgformat.ConfLine(fmt.Sprintf("walweave.w%d", i), v)...)
	}
	if err := os.WriteFile(path, conf, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := c.Restart(); err != nil {
		t.Fatalf("the server does not start on the written postgresql.auto.conf: %v\n%s", err, c.LogTail(20))
	}
	for i, v := range values {
		if got := c.QueryValue(t, fmt.Sprintf("select current_setting('walweave.w%d')", i)); got != v {
			t.Errorf("written %q as %s: the server reads %q", v, pgformat.ConfLine("walweave.w", v), got)
		}
	}
	// The other way: ALTER SYSTEM's quoting, read by ConfValue.
	for i, v := range values {
		c.Exec(t, fmt.Sprintf("alter system set walweave.w%d = %s", i, sqlLiteral(v)))
	}
	conf, err = os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range values {
		if got, ok := pgformat.ConfValue(conf, fmt.Sprintf("walweave.w%d", i)); !ok || got != v {
			t.Errorf("ALTER SYSTEM set %q; ConfValue reads %q, %v", v, got, ok)
		}
	}
}

// sqlLiteral quotes s for SQL (standard_conforming_strings on).
func sqlLiteral(s string) string {
	out := "'"
	for _, r := range s {
		if r == '\'' {
			out += "'"
		}
		out += string(r)
	}
	return out + "'"
}
