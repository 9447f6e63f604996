// Package conninfo reads libpq connection strings (keyword/value or postgres:// URL) into
// their keywords: the one parser behind every decision walweave makes about a connection
// string (which database it names, what primary_conninfo keeps, what a message may echo).
// Connecting is pgconn's; this package only answers questions about the string.
package conninfo

import (
	"fmt"
	"net/url"
	"os"
	"strings"
)

// IsURL reports whether s is a postgres:// or postgresql:// URL.
func IsURL(s string) bool {
	s = strings.TrimSpace(s)
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// Parse reads a keyword/value string or a URL into keywords. A URL's user, password, host,
// port and database path become user, password, host, port and dbname; its query parameters
// are keywords too (the last of a repeated one wins, as does a repeated keyword).
func Parse(s string) (map[string]string, error) {
	s = strings.TrimSpace(s)
	if IsURL(s) {
		return parseURL(s)
	}
	out := map[string]string{}
	for i := 0; i < len(s); {
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		if i >= len(s) {
			break
		}
		eq := strings.IndexByte(s[i:], '=')
		if eq < 0 {
			return nil, fmt.Errorf("connection string: missing \"=\" after %q", s[i:])
		}
		key := strings.TrimSpace(s[i : i+eq])
		if key == "" || strings.ContainsFunc(key, func(r rune) bool { return r < 128 && isSpace(byte(r)) }) {
			return nil, fmt.Errorf("connection string: invalid keyword %q", key)
		}
		i += eq + 1
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		var val strings.Builder
		if i < len(s) && s[i] == '\'' {
			i++
			closed := false
			for i < len(s) {
				c := s[i]
				if c == '\\' && i+1 < len(s) {
					val.WriteByte(s[i+1])
					i += 2
					continue
				}
				i++
				if c == '\'' {
					closed = true
					break
				}
				val.WriteByte(c)
			}
			if !closed {
				return nil, fmt.Errorf("connection string: unterminated quoted value for %q", key)
			}
		} else {
			for i < len(s) && !isSpace(s[i]) {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				val.WriteByte(s[i])
				i++
			}
		}
		out[key] = val.String()
	}
	return out, nil
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

func parseURL(s string) (map[string]string, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("connection string: %w", err)
	}
	out := map[string]string{}
	if u.User != nil {
		out["user"] = u.User.Username()
		if p, ok := u.User.Password(); ok {
			out["password"] = p
		}
	}
	if h := u.Hostname(); h != "" {
		out["host"] = h
	}
	if p := u.Port(); p != "" {
		out["port"] = p
	}
	if db := strings.TrimPrefix(u.Path, "/"); db != "" {
		out["dbname"] = db
	}
	for k, v := range u.Query() {
		if len(v) > 0 {
			out[k] = v[len(v)-1]
		}
	}
	return out, nil
}

// Database returns the database a connection made from s reaches by name: the string's
// dbname (a URL's path or dbname parameter; pgconn's "database" spelling too), else the
// PGDATABASE environment variable, as pgconn reads them; ok is false when neither names one
// (the server then takes the user name) or s does not parse.
func Database(s string) (name string, ok bool) {
	settings, err := Parse(s)
	if err != nil {
		return "", false
	}
	for _, k := range []string{"dbname", "database"} {
		if v, set := settings[k]; set && v != "" {
			return v, true
		}
	}
	if v := os.Getenv("PGDATABASE"); v != "" {
		return v, true
	}
	return "", false
}

// Quote returns v as a keyword/value string's value: as it is when libpq reads it back
// unchanged, else in single quotes with backslash escapes.
func Quote(v string) string {
	if v != "" && !strings.ContainsAny(v, " '\\\t\n\r\f\v") {
		return v
	}
	return "'" + strings.ReplaceAll(strings.ReplaceAll(v, `\`, `\\`), "'", `\'`) + "'"
}
