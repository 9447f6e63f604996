package mux

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgpassfile"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/walweave/walweave/internal/conninfo"
)

// applyReplicationPassfile gives cfg the password of the password file's line for the
// replication pseudo-database, as libpq does for a physical replication connection: when no
// password is given (in the connection string or PGPASSWORD) and no dbname either, the
// database field matched is "replication" (pgconn matches the dbname, which defaults to the
// user name). A line with "*" matches both ways.
func applyReplicationPassfile(cfg *pgconn.Config, connString string) {
	settings, err := conninfo.Parse(connString)
	if err != nil {
		return
	}
	if _, ok := settings["password"]; ok || os.Getenv("PGPASSWORD") != "" {
		return
	}
	if _, ok := conninfo.Database(connString); ok {
		return
	}
	path := settings["passfile"]
	if path == "" {
		path = os.Getenv("PGPASSFILE")
	}
	if path == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return
		}
		path = filepath.Join(home, ".pgpass")
	}
	pf, err := pgpassfile.ReadPassfile(path)
	if err != nil {
		return
	}
	host := cfg.Host
	if network, _ := pgconn.NetworkAddress(cfg.Host, cfg.Port); network == "unix" {
		host = "localhost"
	}
	if pw := pf.FindPassword(host, strconv.Itoa(int(cfg.Port)), "replication", cfg.User); pw != "" {
		cfg.Password = pw
	}
}

// RedactConnString returns the connection string (keyword/value or URL) rebuilt without its
// password, for messages that show which server was meant. It fails when s does not parse.
func RedactConnString(s string) (string, error) {
	s = strings.TrimSpace(s)
	if conninfo.IsURL(s) {
		u, err := url.Parse(s)
		if err != nil {
			return "", fmt.Errorf("connection string: %w", err)
		}
		if u.User != nil {
			u.User = url.User(u.User.Username())
		}
		q := u.Query()
		if q.Has("password") {
			q.Del("password")
			u.RawQuery = q.Encode()
		}
		return u.String(), nil
	}
	settings, err := conninfo.Parse(s)
	if err != nil {
		return "", err
	}
	delete(settings, "password")
	delete(settings, "sslpassword")
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if a, b := keyOrder(keys[i]), keyOrder(keys[j]); a != b {
			return a < b
		}
		return keys[i] < keys[j]
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + conninfo.Quote(settings[k])
	}
	return strings.Join(parts, " "), nil
}

// recoveryKeys are the connection settings carried into primary_conninfo (pg_basebackup -R
// keeps every option but replication, dbname and fallback_application_name).
var recoveryKeys = []string{"host", "hostaddr", "port", "user", "password", "passfile",
	"sslmode", "sslrootcert", "sslcert", "sslkey", "sslcrl", "sslcompression", "sslsni",
	"channel_binding", "gssencmode", "krbsrvname", "target_session_attrs", "connect_timeout",
	"keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count", "application_name"}

// envKeys maps libpq environment variables onto keywords.
var envKeys = map[string]string{"PGHOST": "host", "PGHOSTADDR": "hostaddr", "PGPORT": "port",
	"PGUSER": "user", "PGPASSWORD": "password", "PGPASSFILE": "passfile", "PGSSLMODE": "sslmode",
	"PGSSLROOTCERT": "sslrootcert", "PGSSLCERT": "sslcert", "PGSSLKEY": "sslkey",
	"PGSSLCRL": "sslcrl", "PGSSLSNI": "sslsni", "PGCHANNELBINDING": "channel_binding",
	"PGGSSENCMODE": "gssencmode", "PGTARGETSESSIONATTRS": "target_session_attrs",
	"PGCONNECT_TIMEOUT": "connect_timeout", "PGAPPNAME": "application_name"}

// primaryConnInfo builds the primary_conninfo of a standby of the server the connection
// string reaches: its settings (and the PG* environment's), without replication, dbname
// and, unless withPassword, the password.
func primaryConnInfo(connString string, withPassword bool) (string, error) {
	settings, err := conninfo.Parse(connString)
	if err != nil {
		return "", err
	}
	for env, key := range envKeys {
		if v, ok := os.LookupEnv(env); ok {
			if _, set := settings[key]; !set {
				settings[key] = v
			}
		}
	}
	// The effective user and port (defaults applied as libpq does).
	if cfg, err := pgconn.ParseConfig(connString); err == nil {
		if _, ok := settings["user"]; !ok {
			settings["user"] = cfg.User
		}
		if _, ok := settings["port"]; !ok {
			settings["port"] = strconv.Itoa(int(cfg.Port))
		}
		if _, ok := settings["host"]; !ok {
			settings["host"] = cfg.Host
		}
		if withPassword {
			if _, ok := settings["password"]; !ok && cfg.Password != "" {
				settings["password"] = cfg.Password
			}
		}
	}
	if !withPassword {
		delete(settings, "password")
	}
	var parts []string
	keep := map[string]bool{}
	for _, k := range recoveryKeys {
		keep[k] = true
	}
	keys := make([]string, 0, len(settings))
	for k := range settings {
		if keep[k] {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool { return keyOrder(keys[i]) < keyOrder(keys[j]) })
	for _, k := range keys {
		parts = append(parts, k+"="+conninfo.Quote(settings[k]))
	}
	return strings.Join(parts, " "), nil
}

func keyOrder(k string) int {
	for i, r := range recoveryKeys {
		if r == k {
			return i
		}
	}
	return len(recoveryKeys)
}
