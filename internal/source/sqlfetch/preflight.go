package sqlfetch

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// ErrPrivileges is wrapped by the error of a role that lacks what the source needs
// (*PrivilegeError says what, with the statements that grant it).
var ErrPrivileges = errors.New("missing privileges")

// ErrStandby is wrapped by the error for a standby server.
var ErrStandby = errors.New("server is a standby")

// ErrFullPageWrites is wrapped by the error for a server with full_page_writes off.
var ErrFullPageWrites = errors.New("full_page_writes is off")

// Functions the source calls, with the signatures GRANT EXECUTE names.
var neededFunctions = []string{
	"pg_catalog.pg_backup_start(text, boolean)",
	"pg_catalog.pg_backup_stop(boolean)",
	"pg_catalog.pg_ls_dir(text, boolean, boolean)",
	"pg_catalog.pg_stat_file(text, boolean)",
	"pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean)",
}

// PrivilegeError lists what the role lacks and the statements a superuser runs to grant it.
type PrivilegeError struct {
	Role     string
	Database string
	Grants   []string // GRANT ... and ALTER ROLE ... REPLICATION statements
}

func (e *PrivilegeError) Error() string {
	return fmt.Sprintf("%v: role %q cannot take a backup with --jobs (files read over SQL inside pg_backup_start/pg_backup_stop); as a superuser, in database %q, run:\n  %s",
		ErrPrivileges, e.Role, e.Database, strings.Join(e.Grants, "\n  "))
}

func (e *PrivilegeError) Unwrap() error { return ErrPrivileges }

// preflight checks, before anything starts on the server: not a standby, full_page_writes on,
// and the role's privileges (superuser, or EXECUTE on each function; REPLICATION for the WAL
// side).
func (s *Source) preflight(ctx context.Context) error {
	// One round trip: on a distant server every query costs a round trip.
	q := `SELECT pg_catalog.pg_is_in_recovery()::text, pg_catalog.current_setting('full_page_writes'),
		r.rolsuper::text, r.rolreplication::text, current_user, pg_catalog.current_database(),
		pg_catalog.current_setting('data_directory_mode'),
		coalesce(pg_catalog.has_function_privilege(current_user, pg_catalog.to_regprocedure('pg_catalog.crc32c(bytea)'), 'EXECUTE'), false)::text`
	for i := range neededFunctions {
		q += fmt.Sprintf(", pg_catalog.has_function_privilege(current_user, $%d, 'EXECUTE')::text", i+1)
	}
	q += " FROM pg_catalog.pg_roles r WHERE r.rolname = current_user"
	rows, err := s.rows(ctx, q, neededFunctions...)
	if err != nil {
		return fmt.Errorf("preflight: %w", err)
	}
	if len(rows) != 1 {
		return fmt.Errorf("preflight: the current role is not in pg_roles")
	}
	r := rows[0]
	if r[0] == "true" {
		return fmt.Errorf("%w: --jobs reads files inside pg_backup_start/pg_backup_stop, which walweave runs only on a primary (on a standby the backup could end on another timeline than its WAL stream follows); back up the standby without --jobs (BASE_BACKUP), or point --jobs at the primary", ErrStandby)
	}
	if r[1] != "on" {
		return fmt.Errorf("%w: --jobs copies data files while they are written, and only the full-page images in the WAL repair a page read half-written; set full_page_writes = on (ALTER SYSTEM SET full_page_writes = on; SELECT pg_reload_conf()) or back up without --jobs", ErrFullPageWrites)
	}
	super, repl, role, db := r[2] == "true", r[3] == "true", r[4], r[5]
	s.groupAccess = r[6] == "0750"
	s.serverCRC = r[7] == "true" && !s.cfg.ClientCRC
	if super {
		return nil
	}
	pe := &PrivilegeError{Role: role, Database: db}
	for i, fn := range neededFunctions {
		if r[8+i] != "true" {
			pe.Grants = append(pe.Grants, fmt.Sprintf("GRANT EXECUTE ON FUNCTION %s TO %s;", fn, quoteIdent(role)))
		}
	}
	if !repl {
		pe.Grants = append(pe.Grants, fmt.Sprintf("ALTER ROLE %s REPLICATION;  -- for the WAL stream", quoteIdent(role)))
	}
	if len(pe.Grants) > 0 {
		return pe
	}
	return nil
}

func quoteIdent(s string) string {
	simple := s != ""
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c == '_' || i > 0 && c >= '0' && c <= '9') {
			simple = false
		}
	}
	if simple {
		return s
	}
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}
