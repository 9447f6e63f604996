package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/walweave/walweave/internal/pgerr"
	"github.com/walweave/walweave/mux"
)

// describeConnError turns a failed connection attempt into one line: the server's message
// once (pgconn chains every attempt, e.g. TLS then plain with sslmode=prefer), its DETAIL and
// HINT, and what to do (mux.Hint: the library's one advice table, chosen with errors.Is). ok
// is false when err is not a connection error.
func describeConnError(err error) (msg string, ok bool) {
	msg = pgerr.Describe(err)
	if msg == "" {
		return "", false
	}
	if advice := mux.Hint(err); advice != "" {
		msg += " -- " + advice
	}
	return msg, true
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
