package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walweave/walweave/internal/pgtest"
)

// TestRefusesOldServer: against PostgreSQL 14 (older than walweave's minimum, 15), `walweave
// backup` fails with one clear line naming the server's version and the minimum, before any
// byte is written: nothing on stdout, no -o file (nor its .tmp), no slot left on the server.
// It needs a 14 server, so it runs only with WALWEAVE_PG=14 (scripts/test-matrix.sh does that
// and checks it passed rather than skipped).
func TestRefusesOldServer(t *testing.T) {
	srv := pgtest.RequireAny(t)
	if srv.Major >= pgtest.MinMajor {
		t.Skipf("needs a server older than %d (WALWEAVE_PG=14); %s is supported", pgtest.MinMajor, srv)
	}
	c := pgtest.Start(t, pgtest.Options{Unsupported: true})
	ctx := context.Background()

	stdout, stderr, code := walweave(t, ctx, nil, "backup", "-d", c.DSN(), "-c", "fast")
	if code != 1 {
		t.Fatalf("exit %d, want 1; stderr %q", code, stderr)
	}
	if stdout != "" {
		t.Fatalf("%d bytes written to stdout before the refusal", len(stdout))
	}
	line := strings.TrimSpace(stderr)
	if strings.Contains(line, "\n") {
		t.Fatalf("more than one line: %q", stderr)
	}
	for _, want := range []string{"15 or newer", srv.Version} {
		if !strings.Contains(line, want) {
			t.Fatalf("stderr %q does not mention %q", line, want)
		}
	}
	t.Logf("refusal: %s", line)

	out := filepath.Join(t.TempDir(), "b.tar")
	if _, stderr, code := walweave(t, ctx, nil, "backup", "-d", c.DSN(), "-c", "fast", "-o", out); code != 1 {
		t.Fatalf("-o: exit %d, want 1; stderr %q", code, stderr)
	}
	for _, p := range []string{out, out + ".tmp"} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Fatalf("%s exists after the refusal (stat: %v)", p, err)
		}
	}
	if n := c.QueryValue(t, "select count(*) from pg_replication_slots"); n != "0" {
		t.Fatalf("%s replication slots left on the server", n)
	}
	if n := c.QueryValue(t, "select count(*) from pg_stat_progress_basebackup"); n != "0" {
		t.Fatalf("a base backup is running on the server")
	}
}
