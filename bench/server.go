package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walweave/walweave/internal/pgtest"
)

// server is the PostgreSQL the contenders back up.
type server struct {
	backupDSN string // a role with REPLICATION, over TCP
	sqlDSN    string // a role that may run pgbench, CHECKPOINT and size queries
	binDir    string // pg_basebackup, pgbench
	scratch   bool   // started by this program
	dataDir   string // the scratch cluster's data directory ("" for -d)
	link      string // the capped link the backups go through ("" for none)
	close     func()
}

// scratchSettings are added to the harness's defaults. -X fetch (contender B) needs the WAL
// of the whole backup to still be in pg_wal at its end, which a write load can otherwise
// recycle.
var scratchSettings = map[string]string{"wal_keep_size": "4GB"}

// openServer starts a scratch cluster, or wraps the server given with -d.
func openServer(ctx context.Context, cfg *config) (*server, error) {
	if cfg.pg != "" {
		if cfg.dsn != "" {
			return nil, fmt.Errorf("-pg picks the scratch cluster's server; it does not go with -d")
		}
		os.Setenv(pgtest.EnvPG, cfg.pg) // read by pgtest.Selected
	}
	binDir := cfg.pgbin
	if binDir == "" {
		// The client programs: the server builds of the version matrix have none.
		cl, err := pgtest.Client()
		if err != nil && cfg.dsn == "" {
			return nil, err
		}
		binDir = cl.BinDir
	}
	if cfg.dsn != "" {
		return &server{backupDSN: cfg.dsn, sqlDSN: cfg.sqlDSN, binDir: binDir, close: func() {}}, nil
	}
	logf("starting a scratch cluster")
	c, err := pgtest.StartMain(pgtest.Options{Settings: scratchSettings})
	if err != nil {
		return nil, err
	}
	if v, err := programMajor(filepath.Join(binDir, "pg_basebackup")); err == nil && v < c.Version {
		for _, k := range cfg.only {
			if strings.HasPrefix(k, "A") {
				continue
			}
			c.Close()
			return nil, fmt.Errorf("contender %s needs pg_basebackup, and %s's (%d) refuses PostgreSQL %d: give a newer one with -pgbin, or run only walweave (-only A)", k, binDir, v, c.Version)
		}
	}
	logf("cluster up on port %d (%s, %s)", c.Port, c.Server, c.DataDir)
	srv := &server{
		backupDSN: c.DSN(),
		sqlDSN:    c.SuperDSN("postgres"),
		binDir:    binDir,
		scratch:   true,
		dataDir:   c.DataDir,
		close:     c.Close,
	}
	// --jobs reads files over SQL: the replication role needs EXECUTE on these.
	for _, fn := range []string{"pg_backup_start(text, boolean)", "pg_backup_stop(boolean)",
		"pg_ls_dir(text, boolean, boolean)", "pg_stat_file(text, boolean)",
		"pg_read_binary_file(text, bigint, bigint, boolean)"} {
		if err := srv.exec(ctx, "grant execute on function pg_catalog."+fn+" to "+pgtest.ReplicationUser); err != nil {
			c.Close()
			return nil, err
		}
	}
	return srv, nil
}

// programMajor returns the major version a PostgreSQL program reports with --version.
func programMajor(path string) (int, error) {
	out, err := exec.Command(path, "--version").Output()
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(out))
	if len(f) < 3 {
		return 0, fmt.Errorf("%s --version: %q", path, out)
	}
	major, _, _ := strings.Cut(f[2], ".")
	return strconv.Atoi(major)
}

// bin returns the path of a PostgreSQL client program.
func (s *server) bin(name string) string {
	if s.binDir == "" {
		return name
	}
	return filepath.Join(s.binDir, name)
}

// command returns a PostgreSQL client command with a clean C locale.
func (s *server) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, s.bin(name), args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	return cmd
}

// pgbenchInit (re)creates the pgbench tables at the given scale.
func (s *server) pgbenchInit(ctx context.Context, scale int) error {
	logf("pgbench -i -s %d", scale)
	start := time.Now()
	cmd := s.command(ctx, "pgbench", "-i", "-q", "-s", strconv.Itoa(scale), s.sqlDSN)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pgbench -i: %w\n%s", err, out)
	}
	size, err := s.databaseSize(ctx)
	if err != nil {
		return err
	}
	logf("loaded in %s: %s in all databases", time.Since(start).Round(time.Second), mib(size))
	return nil
}

// exec runs one SQL statement.
func (s *server) exec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, s.sqlDSN)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

// queryText runs a query returning one value, as text.
func (s *server) queryText(ctx context.Context, sql string) (string, error) {
	conn, err := pgx.Connect(ctx, s.sqlDSN)
	if err != nil {
		return "", err
	}
	defer conn.Close(context.Background())
	var v string
	if err := conn.QueryRow(ctx, "select ("+sql+")::text").Scan(&v); err != nil {
		return "", fmt.Errorf("%s: %w", sql, err)
	}
	return v, nil
}

// queryInt runs a query returning one integer.
func (s *server) queryInt(ctx context.Context, sql string) (int64, error) {
	v, err := s.queryText(ctx, sql)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
}

// checkpoint runs CHECKPOINT so every contender starts from the same clean state.
func (s *server) checkpoint(ctx context.Context) error {
	if err := s.exec(ctx, "checkpoint"); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return nil
}

// databaseSize is the sum of pg_database_size over all databases: the data a backup copies.
func (s *server) databaseSize(ctx context.Context) (int64, error) {
	return s.queryInt(ctx, "select sum(pg_database_size(oid)) from pg_database")
}

// counters are server-wide totals sampled around a loaded round.
type counters struct {
	at      time.Time
	commits int64 // xact_commit over all databases
	walLSN  int64 // pg_current_wal_lsn() in bytes
}

// sample reads the counters.
func (s *server) sample(ctx context.Context) (counters, error) {
	commits, err := s.queryInt(ctx, "select sum(xact_commit) from pg_stat_database")
	if err != nil {
		return counters{}, err
	}
	lsn, err := s.queryInt(ctx, "select pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint")
	if err != nil {
		return counters{}, err
	}
	return counters{at: time.Now(), commits: commits, walLSN: lsn}, nil
}

// serverVersion is the server's version string, e.g. "15.18 (Debian 15.18-0+deb12u1)".
func (s *server) serverVersion(ctx context.Context) string {
	v, err := s.queryText(ctx, "current_setting('server_version')")
	if err != nil {
		return "unknown"
	}
	return v
}
