package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/walweave/walweave/mux"
)

// describeConnError turns a failed connection attempt into one line: the server's message
// once (pgconn chains every attempt, e.g. TLS then plain with sslmode=prefer), its DETAIL and
// HINT, and what to do, chosen by SQLSTATE. ok is false when err is not a connection error.
func describeConnError(err error) (msg string, ok bool) {
	var ce *pgconn.ConnectError
	if !errors.As(err, &ce) {
		return "", false
	}
	target := "the server"
	if c := ce.Config; c != nil {
		host := c.Host
		if strings.HasPrefix(host, "/") {
			host = "socket " + host
		}
		target = fmt.Sprintf("%s port %d as %s", host, c.Port, c.User)
	}
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return fmt.Sprintf("cannot connect to %s: %s", target, strings.Join(leafErrors(ce.Unwrap()), "; ")), true
	}
	var b strings.Builder
	fmt.Fprintf(&b, "cannot connect to %s: %s (SQLSTATE %s)", target, pe.Message, pe.Code)
	if pe.Detail != "" {
		fmt.Fprintf(&b, "; DETAIL: %s", pe.Detail)
	}
	if pe.Hint != "" {
		fmt.Fprintf(&b, "; HINT: %s", pe.Hint)
	}
	user := "ROLE"
	if ce.Config != nil && ce.Config.User != "" {
		user = ce.Config.User
	}
	if advice := connAdvice(pe.Code, user, ce.Config != nil && ce.Config.Password != ""); advice != "" {
		b.WriteString(" -- ")
		b.WriteString(advice)
	}
	return b.String(), true
}

// connAdvice says what to do about a connection refused with SQLSTATE code.
func connAdvice(code, user string, havePassword bool) string {
	switch code {
	case "28P01": // invalid_password
		if !havePassword {
			return "no password was given and the server asks for one: set password= in -d, PGPASSWORD, or a ~/.pgpass line host:port:replication:" + user + ":PASSWORD"
		}
		return "the password given (in -d, PGPASSWORD or ~/.pgpass) is wrong for role " + user
	case "28000": // invalid_authorization_specification: pg_hba.conf, or a role without LOGIN
		return "the server does not let this role or client in: pg_hba.conf needs a line for the replication pseudo-database (host replication " + user + " CLIENT/32 scram-sha-256, then reload), and the role needs LOGIN"
	case "42501": // insufficient_privilege
		return "the role needs the REPLICATION attribute: ALTER ROLE " + user + " REPLICATION (as a superuser)"
	case "53300": // too_many_connections
		return "walweave opens two replication connections at once and needs two free walsenders: raise max_wal_senders (and max_connections if it is the limit) on the server and restart it, or wait for other backups and standbys to finish"
	case "57P03": // cannot_connect_now
		return "the server is starting up or shutting down; retry when it accepts connections"
	case "3D000", "42704":
		return "check the role and database names in the connection string"
	}
	return ""
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
		if s := oneLine(e.Error()); !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	if err != nil {
		walk(err)
	}
	return out
}

// describeParseError explains an invalid connection string without echoing its password: the
// string is rebuilt without it when it parses; pgconn's own message is kept only after the
// echoed string.
func describeParseError(connString string, err error) string {
	var pe *pgconn.ParseConfigError
	reason := ""
	if errors.As(err, &pe) {
		// "cannot parse `<string>`: <reason>": keep only what follows the echoed string.
		s := pe.Error()
		if i := strings.LastIndex(s, "`: "); i >= 0 {
			reason = s[i+3:]
		}
	}
	if reason == "" {
		reason = "not a valid keyword/value string or postgres:// URL"
	}
	if safe, err := mux.RedactConnString(connString); err == nil {
		return fmt.Sprintf("invalid connection string %q: %s", safe, oneLine(reason))
	}
	return "invalid connection string: " + oneLine(reason)
}
