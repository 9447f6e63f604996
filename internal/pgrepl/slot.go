package pgrepl

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
)

// CreatePhysicalSlot runs CREATE_REPLICATION_SLOT "name" PHYSICAL (RESERVE_WAL): a permanent
// slot that holds WAL from its creation on. A slot of that name that already exists is not an
// error (existed is true); whether it is physical is for the caller to check
// (ReadReplicationSlot).
func CreatePhysicalSlot(ctx context.Context, conn *pgconn.PgConn, name string) (existed bool, err error) {
	_, err = simpleQuery(ctx, conn, "CREATE_REPLICATION_SLOT "+QuoteIdent(name)+" PHYSICAL (RESERVE_WAL)")
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42710" { // duplicate_object
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("pgrepl: create physical replication slot %q: %w", name, err)
	}
	return false, nil
}
