package mux_test

import (
	"context"
	"log"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/walweave/walweave/internal/pgtest"
	"github.com/walweave/walweave/pgformat"
)

// adminDSN is the scratch server's superuser connection string (createRestorePoint's).
var adminDSN string

// scratchServer starts a throwaway PostgreSQL for an example and returns its connection
// string (the REPLICATION role) and what stops it.
func scratchServer() (dsn string, stop func()) {
	c, err := pgtest.StartMain(pgtest.Options{})
	if err != nil {
		log.Fatal(err)
	}
	adminDSN = c.SuperDSN("postgres")
	return c.DSN(), c.Close
}

// createRestorePoint writes a named restore point as the superuser and returns its position
// once the WAL holding it is flushed.
func createRestorePoint(ctx context.Context, name string) (pgformat.LSN, error) {
	conn, err := pgconn.Connect(ctx, adminDSN)
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)
	res := conn.ExecParams(ctx, "SELECT pg_create_restore_point($1)::text", [][]byte{[]byte(name)}, nil, nil, nil).Read()
	if res.Err != nil {
		return 0, res.Err
	}
	point, err := pgformat.ParseLSN(string(res.Rows[0][0]))
	if err != nil {
		return 0, err
	}
	// A commit after the point flushes the WAL that holds it.
	if err := conn.Exec(ctx, "CREATE TEMP TABLE flush(); DROP TABLE flush").Close(); err != nil {
		return 0, err
	}
	return point, nil
}
