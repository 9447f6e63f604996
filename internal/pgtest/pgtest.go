// Package pgtest starts throwaway PostgreSQL clusters for walweave's integration tests, of the
// version WALWEAVE_PG selects (see EnvPG): 15 by default (Debian's), or 16, 17, 18 (and 14 for
// refusal tests): an installed server of that major (18 from scripts/setup-pg18-src.sh), else
// the checkout's .cache/pg, which scripts/setup-pg-matrix.sh fills (17's server comes from
// there; /usr/lib/postgresql/17/bin holds only its client programs, from
// scripts/setup-pg17-tools.sh, and is no server). docs/development.md says how to
// install them and which oracle checks each version's backups.
//
// A cluster is initialised with data checksums in its own directory under the system temp
// dir, listens on 127.0.0.1 on a free port (scram-sha-256) and on a private unix socket
// directory (trust), and has a superuser ("postgres") and a login role with REPLICATION
// ("walweave"), both with random passwords. When the test process runs as root, the server
// (and every PostgreSQL program the helpers run) runs as the unprivileged "postgres" system
// user, created if absent, and the directories are chowned to it.
//
// Use Start in a test (cleanup is registered with t.Cleanup and also runs when the test
// panics) or StartMain from TestMain to share one cluster across a package. Directories of
// test processes that died without cleaning up are removed the next time a cluster starts.
//
// When the selected server is not installed, Require skips the test with the install command,
// unless WALWEAVE_REQUIRE_PG=1 or WALWEAVE_PG is set, in which case it fails. Client programs
// (psql, pgbench, pg_amcheck, pg_basebackup, pg_verifybackup) come from the system install
// (Client) when the server's bin directory has none; the helpers work around what Debian's 15
// programs cannot do against newer servers (TarBackup, Standby, VerifyBackup).
package pgtest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// InstallHint is the command that installs what the tests need on Debian.
const InstallHint = "apt-get install -y postgresql"

// Superuser and ReplicationUser are the role names every cluster has.
const (
	Superuser       = "postgres"
	ReplicationUser = "walweave"
	// NoReplicationUser is a login role without the REPLICATION attribute.
	NoReplicationUser = "plainuser"
)

// Options configures a cluster. The zero value is a plain cluster.
type Options struct {
	// Settings are extra postgresql.conf settings (name -> value, written as name = 'value').
	Settings map[string]string
	// TLS turns on ssl with a CA and server certificate made for this cluster.
	TLS bool
	// GroupAccess initialises the cluster with --allow-group-access (0750/0640 modes).
	GroupAccess bool
	// NoChecksums initialises without data checksums (initdb --no-data-checksums on 18+,
	// where checksums are on by default).
	NoChecksums bool
	// WALSegmentSizeMB is initdb's --wal-segsize (a power of two, 1..1024; 0 = 16).
	WALSegmentSizeMB int
	// Unsupported allows a server older than MinMajor (for refusal tests).
	Unsupported bool
}

// Cluster is a running (or stopped) throwaway PostgreSQL server.
type Cluster struct {
	BinDir   string
	Base     string // private base directory holding everything below
	DataDir  string
	SockDir  string
	LogFile  string
	Port     int
	Version  int    // major version, e.g. 15
	Server   Server // the binaries: version, bin directory
	Password string
	// ReplPassword is the password of ReplicationUser (and NoReplicationUser).
	ReplPassword string
	// CAFile is the PEM CA certificate that signed the server certificate (TLS only).
	CAFile string

	opts Options
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Require skips (or, with WALWEAVE_REQUIRE_PG=1 or WALWEAVE_PG set, fails) the test when the
// selected PostgreSQL is not installed, skips it when the selected server is older than
// MinMajor (only refusal tests run there), and returns the bin directory otherwise. It logs
// the server the test runs against ("PostgreSQL 17.10"), so that `go test -v` shows what was
// covered.
func Require(t testing.TB) string {
	t.Helper()
	s := requireServer(t)
	if s.Major < MinMajor {
		t.Skipf("%s (%s=%s) is older than walweave's minimum, %d: only the refusal tests run on it", s, EnvPG, os.Getenv(EnvPG), MinMajor)
	}
	return s.BinDir
}

// RequireAny is Require for tests that run on servers walweave does not support (refusal
// tests): it does not skip for the version.
func RequireAny(t testing.TB) Server {
	t.Helper()
	return requireServer(t)
}

func requireServer(t testing.TB) Server {
	t.Helper()
	s, err := Selected()
	if err != nil {
		if os.Getenv("WALWEAVE_REQUIRE_PG") == "1" || explicit() {
			t.Fatalf("%v (WALWEAVE_REQUIRE_PG=1 or %s set: a missing server is a failure)", err, EnvPG)
		}
		t.Skipf("%v", err)
	}
	t.Logf("%s (%s)", s, s.BinDir)
	return s
}

// Start starts a cluster for one test; it is stopped and removed by t.Cleanup, and the tail of
// its server log is printed when the test failed.
func Start(t testing.TB, opts Options) *Cluster {
	t.Helper()
	if opts.Unsupported {
		RequireAny(t)
	} else {
		Require(t)
	}
	c, err := StartMain(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log tail (%s):\n%s", c.DataDir, c.LogTail(60))
		}
		c.Close()
	})
	return c
}

// StartMain starts a cluster outside a test, e.g. from TestMain. The caller must call Close.
// It returns an error wrapping ErrNoServer when no binaries are installed.
func StartMain(opts Options) (*Cluster, error) {
	srv, err := Selected()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoServer, err)
	}
	if srv.Major < MinMajor && !opts.Unsupported {
		return nil, fmt.Errorf("%w: %s is older than walweave's minimum, %d", ErrUnsupported, srv, MinMajor)
	}
	base, err := newBaseDir()
	if err != nil {
		return nil, err
	}
	c := &Cluster{
		BinDir:       srv.BinDir,
		Version:      srv.Major,
		Server:       srv,
		Base:         base,
		DataDir:      filepath.Join(base, "data"),
		SockDir:      filepath.Join(base, "sock"),
		LogFile:      filepath.Join(base, "server.log"),
		Password:     randomHex(12),
		ReplPassword: randomHex(12),
		opts:         opts,
	}
	if err := c.init(); err != nil {
		c.Close()
		return nil, err
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		c.Port, err = freePort()
		if err != nil {
			c.Close()
			return nil, err
		}
		if err := c.writePortConf(); err != nil {
			c.Close()
			return nil, err
		}
		if lastErr = c.start(); lastErr == nil {
			break
		}
	}
	if lastErr != nil {
		c.Close()
		return nil, lastErr
	}
	if err := c.createRoles(); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// ErrNoServer is wrapped by StartMain's error when the selected PostgreSQL is not installed.
var ErrNoServer = errors.New("pgtest: PostgreSQL not installed")

// ErrUnsupported is wrapped by StartMain's error when the selected server is older than
// MinMajor and Options.Unsupported is not set.
var ErrUnsupported = errors.New("pgtest: server too old for walweave")

// MainOrSkip is for TestMain: it starts a cluster, or returns nil so that the package's tests
// skip (or fail) via Require: when PostgreSQL is not installed and neither WALWEAVE_REQUIRE_PG=1
// nor WALWEAVE_PG is set, or when the selected server is older than MinMajor.
func MainOrSkip(opts Options) (*Cluster, error) {
	c, err := StartMain(opts)
	if errors.Is(err, ErrUnsupported) ||
		errors.Is(err, ErrNoServer) && os.Getenv("WALWEAVE_REQUIRE_PG") != "1" && !explicit() {
		fmt.Fprintln(os.Stderr, err)
		return nil, nil
	}
	return c, err
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgtest: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// baseRoot holds every cluster's directory; each is named <pid>-<random> so that the
// directories of dead test processes can be found and removed.
func baseRoot() string { return filepath.Join(os.TempDir(), "walweave-pgtest") }

func newBaseDir() (string, error) {
	root := baseRoot()
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", fmt.Errorf("pgtest: %w", err)
	}
	if err := os.Chmod(root, 0o755); err != nil {
		return "", fmt.Errorf("pgtest: %w", err)
	}
	removeStale(root)
	dir, err := os.MkdirTemp(root, fmt.Sprintf("%d-", os.Getpid()))
	if err != nil {
		return "", fmt.Errorf("pgtest: %w", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", err
	}
	return dir, nil
}

// removeStale removes the directories of test processes that are gone, after killing any
// server still running from them.
func removeStale(root string) {
	entries, _ := os.ReadDir(root)
	for _, e := range entries {
		pidStr, _, ok := strings.Cut(e.Name(), "-")
		if !ok {
			continue
		}
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid == os.Getpid() || processAlive(pid) {
			continue
		}
		dir := filepath.Join(root, e.Name())
		if b, err := os.ReadFile(filepath.Join(dir, "data", "postmaster.pid")); err == nil {
			if line, _, _ := strings.Cut(string(b), "\n"); line != "" {
				if spid, err := strconv.Atoi(line); err == nil && spid > 0 {
					_ = syscall.Kill(spid, syscall.SIGQUIT)
					time.Sleep(200 * time.Millisecond)
				}
			}
		}
		_ = os.RemoveAll(dir)
	}
}

func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// serverUser returns the uid/gid the server runs as: the current user, or "postgres" (created
// if absent) when running as root.
var (
	userOnce sync.Once
	userUID  = -1
	userGID  = -1
	userErr  error
)

func serverCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	userOnce.Do(func() {
		u, err := user.Lookup("postgres")
		if err != nil {
			out, cerr := exec.Command("useradd", "--system", "--user-group", "--home-dir", "/var/lib/postgresql", "--shell", "/bin/bash", "postgres").CombinedOutput()
			if cerr != nil {
				userErr = fmt.Errorf("pgtest: create system user postgres: %v: %s", cerr, out)
				return
			}
			if u, err = user.Lookup("postgres"); err != nil {
				userErr = err
				return
			}
		}
		userUID, _ = strconv.Atoi(u.Uid)
		userGID, _ = strconv.Atoi(u.Gid)
	})
	if userErr != nil {
		return nil, userErr
	}
	return &syscall.Credential{Uid: uint32(userUID), Gid: uint32(userGID), NoSetGroups: true}, nil
}

// Chown gives path (recursively) to the user the server runs as; a no-op when not root.
func Chown(path string) error {
	cred, err := serverCredential()
	if err != nil || cred == nil {
		return err
	}
	return filepath.Walk(path, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, int(cred.Uid), int(cred.Gid))
	})
}

// NewDir makes an empty directory (mode 0700) owned by the server user, under the cluster's
// base directory, for extracted backups, tablespaces and the like.
func (c *Cluster) NewDir(name string) (string, error) {
	dir, err := os.MkdirTemp(c.Base, name+"-")
	if err != nil {
		return "", err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return "", err
	}
	return dir, Chown(dir)
}

// Command returns a command for a PostgreSQL program (a name, or a path) that runs as the
// server user, with PGHOST/PGPORT/PGUSER/PGPASSWORD set for this cluster. A name is looked up
// with ProgramPath: the matrix's server builds have no client programs.
func (c *Cluster) Command(ctx context.Context, program string, args ...string) *exec.Cmd {
	path := program
	if !strings.Contains(program, "/") {
		path = c.ProgramPath(program)
	}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = append(os.Environ(), "PGHOST="+c.SockDir, "PGUSER="+Superuser,
		"PGPASSWORD="+c.Password, "PGDATABASE=postgres", "LC_ALL=C", "TZ=UTC")
	if c.Port != 0 {
		cmd.Env = append(cmd.Env, "PGPORT="+strconv.Itoa(c.Port))
	}
	cmd.Dir = c.Base
	if cred, _ := serverCredential(); cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	return cmd
}

// ProgramPath returns the path of a PostgreSQL program for this cluster (Tool), or BinDir's
// path of it when none is installed (running it then fails, naming the path).
func (c *Cluster) ProgramPath(program string) string {
	if s, ok := c.Tool(program); ok {
		return filepath.Join(s.BinDir, program)
	}
	return filepath.Join(c.BinDir, program)
}

// Tool returns the installation whose program the helpers run against this cluster: the
// server's own bin directory when it has the program, else an installed PostgreSQL of the same
// major, else, for a program that is not bound to its own version's files (psql, pgbench,
// pg_amcheck, pg_basebackup, pg_receivewal), the oldest installed one newer than the server,
// else the newest older one. Programs that read WAL, pg_control or backups of their own version
// only (pg_waldump, pg_verifybackup, pg_combinebackup, pg_controldata...) are never taken from
// another major: ok is false then.
func (c *Cluster) Tool(program string) (Server, bool) {
	return pickTool(c.Server, program, Installed())
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// Run runs a PostgreSQL program as the server user and returns its combined output; the
// error includes the output.
func (c *Cluster) Run(ctx context.Context, program string, args ...string) (string, error) {
	out, err := c.Command(ctx, program, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w\n%s", program, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func (c *Cluster) init() error {
	for _, d := range []string{c.SockDir} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return err
		}
	}
	pwfile := filepath.Join(c.Base, "pwfile")
	if err := os.WriteFile(pwfile, []byte(c.Password+"\n"), 0o600); err != nil {
		return err
	}
	if err := Chown(c.Base); err != nil {
		return err
	}
	args := []string{"-D", c.DataDir, "-U", Superuser, "--pwfile", pwfile, "--auth-local=trust",
		"--auth-host=scram-sha-256", "--encoding=UTF8", "--locale=C", "--no-sync"}
	if !c.opts.NoChecksums {
		args = append(args, "--data-checksums")
	} else if c.Version >= 18 {
		args = append(args, "--no-data-checksums") // 18's default is on
	}
	if c.opts.GroupAccess {
		args = append(args, "--allow-group-access")
	}
	if c.opts.WALSegmentSizeMB != 0 {
		args = append(args, "--wal-segsize="+strconv.Itoa(c.opts.WALSegmentSizeMB))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := c.Run(ctx, filepath.Join(c.BinDir, "initdb"), args...); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	_ = os.Remove(pwfile)
	hba := "local all all trust\nlocal replication all trust\n" +
		"host all all 127.0.0.1/32 scram-sha-256\nhost replication all 127.0.0.1/32 scram-sha-256\n"
	if err := os.WriteFile(filepath.Join(c.DataDir, "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		return err
	}
	conf := map[string]string{
		"listen_addresses":        "127.0.0.1",
		"unix_socket_directories": c.SockDir,
		"wal_level":               "replica",
		"max_wal_senders":         "16",
		"max_replication_slots":   "16",
		"max_connections":         "60",
		"shared_buffers":          "64MB",
		"fsync":                   "off",
		"synchronous_commit":      "off",
		"full_page_writes":        "on",
		"password_encryption":     "scram-sha-256",
		"log_line_prefix":         "%m [%p] %q%u@%d ",
		"logging_collector":       "off",
		"log_min_messages":        "warning",
		"lc_messages":             "C",
	}
	if c.opts.TLS {
		if err := c.makeCertificates(); err != nil {
			return err
		}
		conf["ssl"] = "on"
		conf["ssl_cert_file"] = filepath.Join(c.DataDir, "server.crt")
		conf["ssl_key_file"] = filepath.Join(c.DataDir, "server.key")
	}
	for k, v := range c.opts.Settings {
		conf[k] = v
	}
	var b strings.Builder
	b.WriteString("\n# pgtest\n")
	keys := make([]string, 0, len(conf))
	for k := range conf {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "%s = '%s'\n", k, strings.ReplaceAll(conf[k], "'", "''"))
	}
	b.WriteString("include_if_exists = 'pgtest_port.conf'\n")
	f, err := os.OpenFile(filepath.Join(c.DataDir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(b.String()); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return Chown(c.Base)
}

func (c *Cluster) writePortConf() error {
	p := filepath.Join(c.DataDir, "pgtest_port.conf")
	if err := os.WriteFile(p, []byte(fmt.Sprintf("port = %d\n", c.Port)), 0o600); err != nil {
		return err
	}
	return Chown(p)
}

// start runs the postmaster directly (not through pg_ctl) so that it is our child: it gets
// SIGQUIT (immediate shutdown) if the test process dies.
func (c *Cluster) start() error {
	return c.startWith()
}

func (c *Cluster) startWith() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd != nil {
		return nil
	}
	logf, err := os.OpenFile(c.LogFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(filepath.Join(c.BinDir, "postgres"), "-D", c.DataDir)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.Env = append(os.Environ(), "LC_ALL=C", "TZ=UTC")
	cmd.Dir = c.Base
	attr := &syscall.SysProcAttr{Pdeathsig: syscall.SIGQUIT, Setpgid: true}
	if cred, _ := serverCredential(); cred != nil {
		attr.Credential = cred
	}
	cmd.SysProcAttr = attr
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("pgtest: start postgres: %w", err)
	}
	logf.Close()
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	c.cmd, c.done = cmd, done
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			c.cmd = nil
			return fmt.Errorf("pgtest: postgres exited during startup:\n%s", c.LogTail(30))
		default:
		}
		if c.ready() {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.killLocked(syscall.SIGQUIT)
	return fmt.Errorf("pgtest: postgres did not accept connections within 60s:\n%s", c.LogTail(30))
}

func (c *Cluster) ready() bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.SocketDSN("postgres"))
	if err != nil {
		return false
	}
	defer conn.Close(ctx)
	var inRecovery bool
	return conn.QueryRow(ctx, "select pg_is_in_recovery()").Scan(&inRecovery) == nil
}

func (c *Cluster) createRoles() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, q := range []string{
		fmt.Sprintf("create role %s login replication password '%s'", ReplicationUser, c.ReplPassword),
		fmt.Sprintf("create role %s login password '%s'", NoReplicationUser, c.ReplPassword),
		fmt.Sprintf("grant pg_read_all_settings to %s", ReplicationUser),
	} {
		if err := c.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	return nil
}

// SocketDSN connects as the superuser through the private unix socket (trust auth).
func (c *Cluster) SocketDSN(db string) string {
	return fmt.Sprintf("host=%s port=%d user=%s dbname=%s", c.SockDir, c.Port, Superuser, db)
}

// SuperDSN connects as the superuser over TCP with its password.
func (c *Cluster) SuperDSN(db string) string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=%s password=%s dbname=%s sslmode=%s", c.Port, Superuser, c.Password, db, c.sslmode())
}

// DSN is what a backup tool is given: TCP, the REPLICATION role, its password; no
// replication parameter (walweave adds it itself).
func (c *Cluster) DSN() string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=%s password=%s sslmode=%s", c.Port, ReplicationUser, c.ReplPassword, c.sslmode())
}

// ReplicationDSN is DSN plus replication=true (a physical replication connection).
func (c *Cluster) ReplicationDSN() string { return c.DSN() + " replication=true" }

func (c *Cluster) sslmode() string {
	if c.opts.TLS {
		return "require"
	}
	return "disable"
}

// ExecContext runs SQL statements as the superuser in database postgres.
func (c *Cluster) ExecContext(ctx context.Context, sql string, args ...any) error {
	return c.ExecDB(ctx, "postgres", sql, args...)
}

// ExecDB runs SQL as the superuser in the named database.
func (c *Cluster) ExecDB(ctx context.Context, db, sql string, args ...any) error {
	conn, err := pgx.Connect(ctx, c.SocketDSN(db))
	if err != nil {
		return fmt.Errorf("pgtest: connect: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		return fmt.Errorf("pgtest: %s: %w", firstLine(sql), err)
	}
	return nil
}

// Exec runs SQL as the superuser in database postgres and fails the test on error.
func (c *Cluster) Exec(t testing.TB, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := c.ExecContext(ctx, sql, args...); err != nil {
		t.Fatal(err)
	}
}

// QueryValue runs a query returning one value (as text) in database postgres; fails the test on error.
func (c *Cluster) QueryValue(t testing.TB, sql string, args ...any) string {
	t.Helper()
	v, err := c.QueryValueDB(context.Background(), "postgres", sql, args...)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// QueryValueDB runs a query returning one value, rendered as text ("" for NULL).
func (c *Cluster) QueryValueDB(ctx context.Context, db, sql string, args ...any) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.SocketDSN(db))
	if err != nil {
		return "", fmt.Errorf("pgtest: connect: %w", err)
	}
	defer conn.Close(context.Background())
	var v *string
	if err := conn.QueryRow(ctx, "select ("+sql+")::text", args...).Scan(&v); err != nil {
		return "", fmt.Errorf("pgtest: %s: %w", firstLine(sql), err)
	}
	if v == nil {
		return "", nil
	}
	return *v, nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	if len(s) > 80 {
		s = s[:80] + "..."
	}
	return s
}

// CreateTablespace creates a tablespace in its own directory (outside the data directory) and
// returns its oid and location.
func (c *Cluster) CreateTablespace(t testing.TB, name string) (oid, location string) {
	t.Helper()
	dir, err := c.NewDir("ts-" + name)
	if err != nil {
		t.Fatal(err)
	}
	c.Exec(t, fmt.Sprintf("create tablespace %s location '%s'", pgx.Identifier{name}.Sanitize(), dir))
	return c.QueryValue(t, "select oid from pg_tablespace where spcname = $1", name), dir
}

// PgbenchInit runs `pgbench -i -s scale` in database postgres.
func (c *Cluster) PgbenchInit(t testing.TB, scale int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	if _, err := c.Run(ctx, "pgbench", "-i", "-q", "-s", strconv.Itoa(scale), "postgres"); err != nil {
		t.Fatal(err)
	}
}

// Load is a background pgbench write load.
type Load struct {
	cmd    *exec.Cmd
	out    bytes.Buffer
	done   chan struct{}
	err    error
	cancel context.CancelFunc
}

// StartLoad starts `pgbench -c clients -T 3600` (TPC-B-like writes) in the background; call
// Stop to end it. A cleanup stops it too.
func (c *Cluster) StartLoad(t testing.TB, clients int) *Load {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	l := &Load{cancel: cancel, done: make(chan struct{})}
	l.cmd = c.Command(ctx, "pgbench", "-n", "-c", strconv.Itoa(clients), "-j", "1", "-T", "3600", "postgres")
	l.cmd.Stdout, l.cmd.Stderr = &l.out, &l.out
	l.cmd.Cancel = func() error { return l.cmd.Process.Signal(syscall.SIGINT) }
	l.cmd.WaitDelay = 10 * time.Second
	if err := l.cmd.Start(); err != nil {
		cancel()
		t.Fatalf("pgtest: start pgbench: %v", err)
	}
	go func() { l.err = l.cmd.Wait(); close(l.done) }()
	t.Cleanup(func() { _ = l.Stop() })
	return l
}

// Running reports whether the load is still running.
func (l *Load) Running() bool {
	select {
	case <-l.done:
		return false
	default:
		return true
	}
}

// Stop ends the load and waits for pgbench to exit. It returns an error if pgbench failed
// before it was stopped.
func (l *Load) Stop() error {
	wasRunning := l.Running()
	l.cancel()
	<-l.done
	if !wasRunning && l.err != nil {
		return fmt.Errorf("pgtest: pgbench failed: %v\n%s", l.err, l.out.String())
	}
	return nil
}

// Stop shuts the server down (fast mode) and waits for it.
func (c *Cluster) Stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stopLocked(syscall.SIGINT, 60*time.Second)
}

// Kill stops the server with SIGQUIT (immediate shutdown: crash recovery at next start).
func (c *Cluster) Kill() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.killLocked(syscall.SIGQUIT)
}

func (c *Cluster) killLocked(sig syscall.Signal) {
	_ = c.stopLocked(sig, 30*time.Second)
}

func (c *Cluster) stopLocked(sig syscall.Signal, wait time.Duration) error {
	if c.cmd == nil {
		return nil
	}
	_ = c.cmd.Process.Signal(sig)
	select {
	case <-c.done:
	case <-time.After(wait):
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		<-c.done
	}
	c.cmd = nil
	return nil
}

// Restart stops the server (fast) and starts it again on the same port.
func (c *Cluster) Restart() error {
	if err := c.Stop(); err != nil {
		return err
	}
	return c.startWith()
}

// StartAgain starts a stopped server.
func (c *Cluster) StartAgain() error { return c.startWith() }

// Running reports whether the postmaster is running.
func (c *Cluster) Running() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cmd != nil
}

// Log returns the whole server log.
func (c *Cluster) Log() string {
	b, _ := os.ReadFile(c.LogFile)
	return string(b)
}

// LogTail returns the last n lines of the server log.
func (c *Cluster) LogTail(n int) string {
	f, err := os.Open(c.LogFile)
	if err != nil {
		return ""
	}
	defer f.Close()
	var lines []string
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 64*1024), 1<<20)
	for s.Scan() {
		lines = append(lines, s.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

// Close stops the server (immediately) and removes every directory of the cluster.
func (c *Cluster) Close() {
	c.mu.Lock()
	c.killLocked(syscall.SIGQUIT)
	c.mu.Unlock()
	if c.Base != "" {
		_ = os.RemoveAll(c.Base)
	}
}
