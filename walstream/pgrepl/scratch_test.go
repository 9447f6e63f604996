package pgrepl

import (
	"context"
	"testing"
)

func TestScratch(t *testing.T) {
	c := server(t)
	ctx := context.Background()
	for _, q := range []string{"CREATE_REPLICATION_SLOT \"x\" TEMPORARY PHYSICAL (RESERVE_WAL)", "IDENTIFY_SYSTEM", "START_REPLICATION PHYSICAL 1/0 TIMELINE 1"} {
		out, err := c.Run(ctx, "psql", "-d", "replication=true", "-c", q)
		t.Logf("%s:\n%s %v", q, out, err)
	}
}
