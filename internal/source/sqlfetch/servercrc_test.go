package sqlfetch

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/walweave/walweave/internal/pgtest"
)

// TestServerCRCDetected: the readers ask the server for the manifest's CRC-32C only where
// it can give them: PostgreSQL 18 and later, a role that may execute crc32c(bytea), and
// Config.ClientCRC not set. Elsewhere the client computes them (the drills check those
// manifests with pg_verifybackup; TestWireConn checks the server's values).
func TestServerCRCDetected(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{})
	v18 := c.QueryValue(t, "select (current_setting('server_version_num')::int >= 180000)::text") == "true"
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	open := func(cs string, clientCRC bool) bool {
		t.Helper()
		s := New(Config{ConnString: cs, Jobs: 2, ClientCRC: clientCRC})
		defer s.Close()
		if _, err := s.Open(ctx); err != nil {
			t.Fatalf("open: %v", err)
		}
		return s.serverCRC
	}
	if got := open(c.SuperDSN("postgres"), false); got != v18 {
		t.Fatalf("superuser: server CRC %v, want %v (PostgreSQL 18 or later)", got, v18)
	}
	if open(c.SuperDSN("postgres"), true) {
		t.Fatal("server CRC with ClientCRC set")
	}
	// A role with exactly --jobs' grants, then crc32c revoked from PUBLIC.
	var grants []string
	for _, fn := range neededFunctions {
		grants = append(grants, "grant execute on function "+fn+" to "+pgtest.ReplicationUser)
	}
	c.Exec(t, strings.Join(grants, "; "))
	dsn := c.DSN() + " dbname=postgres"
	if got := open(dsn, false); got != v18 {
		t.Fatalf("role with --jobs' grants: server CRC %v, want %v", got, v18)
	}
	if v18 {
		c.Exec(t, "revoke execute on function pg_catalog.crc32c(bytea) from public")
		if open(dsn, false) {
			t.Fatal("server CRC for a role that may not execute crc32c(bytea)")
		}
	}
}

// TestComing: a reader's low-water mark is the file bytes of its queries in flight, at most
// readerLowWater.
func TestComing(t *testing.T) {
	f := &fetcher{tasks: []*task{
		{pieces: []piece{{n: 1 << 20}}},
		{pieces: []piece{{n: 100}, {n: 200}}},
		{pieces: []piece{{n: 1 << 20}}},
		{pieces: []piece{{n: 1 << 20}}},
	}}
	for _, tc := range []struct {
		inflight []int
		want     int
	}{
		{[]int{1}, 300},
		{[]int{0, 1}, 1<<20 + 300},
		{[]int{0, 2, 3}, readerLowWater},
		{[]int{0, 1, 2, 3}, readerLowWater},
		{nil, 0},
	} {
		if got := f.coming(tc.inflight); got != tc.want {
			t.Fatalf("coming(%v) = %d, want %d", tc.inflight, got, tc.want)
		}
	}
}
