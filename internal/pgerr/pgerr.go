// Package pgerr is what every data source and the WAL receiver share about a server's
// refusals: the oldest server walweave backs up, the sentinel errors an operator acts on,
// which SQLSTATE means which sentinel on which kind of connection, and one table of advice
// (Hint). Decisions are made by SQLSTATE, never by message text (the server's messages follow
// its lc_messages).
package pgerr

import (
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// MinServerVersion is the oldest server walweave backs up (server_version_num): PostgreSQL 15,
// for BASE_BACKUP's protocol, pg_backup_start/pg_backup_stop and READ_REPLICATION_SLOT.
const MinServerVersion = 150000

// Sentinel errors. ErrServerTooOld is wrapped by CheckVersion; the others are matched by
// SQLSTATE (Sentinels) through a *ConnError or an error type that asks Sentinels.
var (
	ErrServerTooOld       = errors.New("server too old")
	ErrAuthentication     = errors.New("authentication failed")
	ErrNoReplicationRole  = errors.New("role lacks the REPLICATION attribute")
	ErrTooFewWALSenders   = errors.New("too few walsenders (max_wal_senders)")
	ErrTooFewSlots        = errors.New("too few replication slots (max_replication_slots)")
	ErrSlotMissing        = errors.New("the replication slot does not exist")
	ErrTooManyConnections = errors.New("too many connections (max_connections)")
	ErrPermissionDenied   = errors.New("permission denied")

	// Finer cases, for the advice only.
	errPassword   = errors.New("password refused")
	errNotAllowed = errors.New("connection not allowed (pg_hba.conf or no LOGIN)")
	errNotNow     = errors.New("the server does not accept connections now")
	errNoDatabase = errors.New("the database does not exist")
)

// CheckVersion returns an error wrapping ErrServerTooOld when num (server_version_num) is
// older than MinServerVersion; version is the server's own spelling, for the message.
func CheckVersion(num int, version string) error {
	if num >= MinServerVersion {
		return nil
	}
	return fmt.Errorf("%w: the server runs PostgreSQL %s; walweave needs PostgreSQL 15 or newer", ErrServerTooOld, version)
}

// Kind is the kind of connection an error came from: a SQLSTATE means different things on
// each (53300 is max_wal_senders on a replication connection, max_connections on an ordinary
// one).
type Kind uint8

// The kinds of connection.
const (
	Replication Kind = iota // physical replication (BASE_BACKUP, the WAL receiver)
	Ordinary                // plain SQL (the --jobs readers, a fleet's SQL sessions)
)

// ConnError marks an error as coming from a connection of Kind. Its message is the failed
// connection's in one line (the server's message once, however many attempts pgconn made).
type ConnError struct {
	Kind Kind
	Err  error
}

// On marks err as coming from a connection of kind k (nil stays nil; an already marked error
// keeps its kind).
func On(k Kind, err error) error {
	var ce *ConnError
	if err == nil || errors.As(err, &ce) {
		return err
	}
	return &ConnError{Kind: k, Err: err}
}

func (e *ConnError) Error() string {
	if ce, ok := e.Err.(*pgconn.ConnectError); ok {
		return describeConnect(ce)
	}
	return e.Err.Error()
}

func (e *ConnError) Unwrap() error { return e.Err }

// Is matches the sentinels by SQLSTATE, read for the connection's kind.
func (e *ConnError) Is(target error) bool { return Matches(e, target) }

// Matches reports whether target is one of err's sentinels (see Sentinels).
func Matches(err, target error) bool {
	if target == nil {
		return false
	}
	for _, s := range Sentinels(err) {
		if s == target {
			return true
		}
	}
	return false
}

// Sentinels returns the sentinels err's SQLSTATE stands for, read for the kind of connection
// it came from (a *ConnError in the chain; a replication connection when none says).
func Sentinels(err error) []error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return nil
	}
	kind := Replication
	var ce *ConnError
	if errors.As(err, &ce) {
		kind = ce.Kind
	}
	switch pe.Code {
	case "28P01": // invalid_password
		return []error{ErrAuthentication, errPassword}
	case "28000": // invalid_authorization_specification: pg_hba.conf, a role without LOGIN
		return []error{ErrAuthentication, errNotAllowed}
	case "42501": // insufficient_privilege
		if kind == Replication {
			return []error{ErrNoReplicationRole}
		}
		return []error{ErrPermissionDenied}
	case "53300": // too_many_connections
		if kind == Replication {
			return []error{ErrTooFewWALSenders}
		}
		return []error{ErrTooManyConnections}
	case "53400": // configuration_limit_exceeded
		if kind == Replication {
			return []error{ErrTooFewSlots}
		}
	case "42704": // undefined_object
		if kind == Replication {
			return []error{ErrSlotMissing}
		}
	case "57P03": // cannot_connect_now
		return []error{errNotNow}
	case "3D000": // invalid_catalog_name
		return []error{errNoDatabase}
	}
	return nil
}

// advice is the one table of what to do, chosen with errors.Is; the first row that matches
// wins. user is the role of the failed connection ("ROLE" when unknown).
var advice = []struct {
	err  error
	text func(user string, password bool) string
}{
	{errPassword, func(user string, password bool) string {
		if !password {
			return "no password was given and the server asks for one: set password= in the connection string, PGPASSWORD, or a ~/.pgpass line host:port:replication:" + user + ":PASSWORD"
		}
		return "the password given (in the connection string, PGPASSWORD or ~/.pgpass) is wrong for role " + user
	}},
	{errNotAllowed, func(user string, _ bool) string {
		return "the server does not let this role or client in: pg_hba.conf needs a line for the replication pseudo-database (host replication " + user + " CLIENT/32 scram-sha-256, then reload), and the role needs LOGIN"
	}},
	{ErrNoReplicationRole, func(user string, _ bool) string {
		return "the role needs the REPLICATION attribute: ALTER ROLE " + user + " REPLICATION (as a superuser)"
	}},
	{ErrTooFewWALSenders, func(string, bool) string {
		return "walweave opens two replication connections at once and needs two free walsenders: raise max_wal_senders (and max_connections if it is the limit) on the server and restart it, or wait for other backups and standbys to finish"
	}},
	{ErrTooManyConnections, func(string, bool) string {
		return "the server's max_connections (or the role's connection limit) is reached: reading files over SQL opens one ordinary connection per job and one more; use fewer jobs, raise max_connections, or wait for other sessions to end"
	}},
	{ErrPermissionDenied, func(user string, _ bool) string {
		return "role " + user + " lacks a privilege the backup over SQL needs: CONNECT on the database, and EXECUTE on pg_backup_start, pg_backup_stop, pg_ls_dir, pg_stat_file and pg_read_binary_file (GRANT them as a superuser)"
	}},
	{ErrTooFewSlots, func(string, bool) string {
		return "every replication slot is in use: raise max_replication_slots (restart) or drop an unused slot"
	}},
	{ErrSlotMissing, func(string, bool) string {
		return "create the slot with SELECT pg_create_physical_replication_slot('NAME', true), or stream through a temporary slot (no slot name)"
	}},
	{ErrServerTooOld, func(string, bool) string { return "use pg_basebackup for servers older than PostgreSQL 15" }},
	{errNotNow, func(string, bool) string {
		return "the server is starting up or shutting down; retry when it accepts connections"
	}},
	{errNoDatabase, func(string, bool) string { return "check the role and database names in the connection string" }},
}

// Hint returns what to do about err, or "" when the table has nothing for it.
func Hint(err error) string {
	if err == nil {
		return ""
	}
	user, password := "ROLE", false
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) && ce.Config != nil {
		if ce.Config.User != "" {
			user = ce.Config.User
		}
		password = ce.Config.Password != ""
	}
	for _, a := range advice {
		if errors.Is(err, a.err) || Matches(err, a.err) {
			return a.text(user, password)
		}
	}
	return ""
}

// describeConnect is a failed connection attempt in one line: the server's message once
// (pgconn chains every attempt, e.g. TLS then plain with sslmode=prefer), its DETAIL and HINT.
func describeConnect(ce *pgconn.ConnectError) string {
	target := "the server"
	if c := ce.Config; c != nil {
		host := c.Host
		if strings.HasPrefix(host, "/") {
			host = "socket " + host
		}
		target = fmt.Sprintf("%s port %d as %s", host, c.Port, c.User)
	}
	var pe *pgconn.PgError
	if !errors.As(ce, &pe) {
		return fmt.Sprintf("cannot connect to %s: %s", target, strings.Join(leafErrors(ce.Unwrap()), "; "))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "cannot connect to %s: %s (SQLSTATE %s)", target, pe.Message, pe.Code)
	if pe.Detail != "" {
		fmt.Fprintf(&b, "; DETAIL: %s", pe.Detail)
	}
	if pe.Hint != "" {
		fmt.Fprintf(&b, "; HINT: %s", pe.Hint)
	}
	return b.String()
}

// Describe is err's failed connection in one line, or "" when err holds no
// *pgconn.ConnectError.
func Describe(err error) string {
	var ce *pgconn.ConnectError
	if !errors.As(err, &ce) {
		return ""
	}
	return describeConnect(ce)
}

// leafErrors lists the distinct messages of err's joined errors (one per connection attempt).
func leafErrors(err error) []string {
	var out []string
	seen := map[string]bool{}
	var walk func(error)
	walk = func(e error) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range j.Unwrap() {
				walk(x)
			}
			return
		}
		s := strings.Join(strings.Fields(e.Error()), " ")
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	if err != nil {
		walk(err)
	}
	return out
}
