package pgtest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

func identifySystem(ctx context.Context, t *testing.T, dsn string) (string, error) {
	t.Helper()
	conn, err := pgconn.Connect(ctx, dsn)
	if err != nil {
		return "", err
	}
	defer conn.Close(context.Background())
	res, err := conn.Exec(ctx, "IDENTIFY_SYSTEM").ReadAll()
	if err != nil {
		return "", err
	}
	if len(res) != 1 || len(res[0].Rows) != 1 {
		t.Fatalf("IDENTIFY_SYSTEM: unexpected result %+v", res)
	}
	return string(res[0].Rows[0][0]), nil
}

func TestTwoClustersScramReplication(t *testing.T) {
	a := Start(t, Options{})
	b := Start(t, Options{Settings: map[string]string{"wal_sender_timeout": "2s"}})
	if a.Port == b.Port || a.DataDir == b.DataDir {
		t.Fatalf("clusters share port or data dir: %d %d", a.Port, b.Port)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	sysA, err := identifySystem(ctx, t, a.ReplicationDSN())
	if err != nil {
		t.Fatalf("IDENTIFY_SYSTEM on A: %v", err)
	}
	sysB, err := identifySystem(ctx, t, b.ReplicationDSN())
	if err != nil {
		t.Fatalf("IDENTIFY_SYSTEM on B: %v", err)
	}
	if sysA == sysB || sysA == "" {
		t.Fatalf("system identifiers should differ: %q %q", sysA, sysB)
	}
	if got := b.QueryValue(t, "current_setting('wal_sender_timeout')"); got != "2s" {
		t.Fatalf("extra GUC not applied: wal_sender_timeout = %q", got)
	}
	if got := a.QueryValue(t, "current_setting('data_checksums')"); got != "on" {
		t.Fatalf("data_checksums = %q, want on", got)
	}

	// scram over TCP: a wrong password is refused, the right one works.
	bad := strings.Replace(a.DSN(), a.ReplPassword, "wrong", 1)
	if _, err := pgconn.Connect(ctx, bad+" dbname=postgres"); err == nil || !strings.Contains(err.Error(), "password authentication failed") {
		t.Fatalf("wrong password: got %v", err)
	}
	conn, err := pgconn.Connect(ctx, a.SuperDSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	if got := a.QueryValue(t, "select count(*) from pg_authid where rolpassword like 'SCRAM-SHA-256$%'"); got != "3" {
		t.Fatalf("scram passwords: %s roles", got)
	}

	// A role without REPLICATION cannot open a replication connection. The wording changed in
	// 18 (15-17: "must be superuser or replication role to start walsender"; 18: "permission
	// denied to start WAL sender" with the role attribute in DETAIL): the SQLSTATE did not.
	plain := strings.Replace(a.DSN(), "user="+ReplicationUser, "user="+NoReplicationUser, 1) + " replication=true"
	_, err = identifySystem(ctx, t, plain)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
		t.Fatalf("role without REPLICATION: got %v, want SQLSTATE 42501 (insufficient_privilege)", err)
	}
	t.Logf("role without REPLICATION: %s (DETAIL %q)", pgErr.Message, pgErr.Detail)
}

// TestVersionSelected: the server that runs is the one WALWEAVE_PG selects (15 by default),
// it reports the same version as its binaries, and checksums follow Options on every version
// (18 turns them on by default; NoChecksums must still turn them off).
func TestVersionSelected(t *testing.T) {
	c := Start(t, Options{NoChecksums: true})
	want := DefaultMajor
	if v := os.Getenv(EnvPG); v != "" && !strings.Contains(v, "/") {
		want, _ = strconv.Atoi(v)
	}
	if !strings.Contains(os.Getenv(EnvPG), "/") && c.Version != want {
		t.Fatalf("%s=%q started PostgreSQL %d, want %d", EnvPG, os.Getenv(EnvPG), c.Version, want)
	}
	num, err := strconv.Atoi(c.QueryValue(t, "current_setting('server_version_num')"))
	if err != nil {
		t.Fatal(err)
	}
	if num != c.VersionNum() || num/10000 != c.Version {
		t.Fatalf("server_version_num %d, binaries say %d (major %d)", num, c.VersionNum(), c.Version)
	}
	if got := c.QueryValue(t, "current_setting('data_checksums')"); got != "off" {
		t.Fatalf("NoChecksums: data_checksums = %q, want off", got)
	}
	t.Logf("server-side lz4: %v", c.ServerLZ4(t))
}

func TestServerRunsUnprivileged(t *testing.T) {
	c := Start(t, Options{})
	if os.Geteuid() == 0 {
		fi, err := os.Stat(filepath.Join(c.DataDir, "PG_VERSION"))
		if err != nil {
			t.Fatal(err)
		}
		if owner := fileUID(fi); owner == 0 {
			t.Fatalf("data directory owned by root")
		}
	}
	if c.VersionNum() < MinMajor*10000 {
		t.Fatalf("server version %d", c.VersionNum())
	}
}

func TestTablespaceAndLoad(t *testing.T) {
	c := Start(t, Options{})
	oid, loc := c.CreateTablespace(t, "ts1")
	if oid == "" {
		t.Fatal("no tablespace oid")
	}
	c.Exec(t, "create table t_in_ts (i int) tablespace ts1; insert into t_in_ts select generate_series(1, 100)")
	matches, _ := filepath.Glob(filepath.Join(loc, "PG_*"))
	if len(matches) != 1 {
		t.Fatalf("tablespace dir %s has no PG_* subdir", loc)
	}

	c.PgbenchInit(t, 1)
	before := c.QueryValue(t, "select count(*) from pgbench_history")
	load := c.StartLoad(t, 2)
	deadline := time.Now().Add(60 * time.Second)
	for c.QueryValue(t, "select count(*) from pgbench_history") == before {
		if time.Now().After(deadline) || !load.Running() {
			t.Fatalf("pgbench load made no progress (running=%v)", load.Running())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := load.Stop(); err != nil {
		t.Fatal(err)
	}
	if load.Running() {
		t.Fatal("load still running after Stop")
	}
	n1 := c.QueryValue(t, "select count(*) from pgbench_history")
	time.Sleep(300 * time.Millisecond)
	if n2 := c.QueryValue(t, "select count(*) from pgbench_history"); n1 != n2 {
		t.Fatalf("history still growing after Stop: %s -> %s", n1, n2)
	}
	// pgbench's invariant holds on the source.
	if got := c.QueryValue(t, Invariant); got != "true" {
		t.Fatalf("pgbench invariant: %s", got)
	}
}

func TestRestartKillAndLog(t *testing.T) {
	c := Start(t, Options{})
	c.Exec(t, "create table keep (i int); insert into keep values (42)")
	if err := c.Restart(); err != nil {
		t.Fatal(err)
	}
	if got := c.QueryValue(t, "select i from keep"); got != "42" {
		t.Fatalf("after restart: %q", got)
	}
	c.Kill()
	if c.Running() {
		t.Fatal("running after Kill")
	}
	if err := c.StartAgain(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(c.Log(), "database system was interrupted") {
		t.Fatalf("expected crash recovery in log, got tail:\n%s", c.LogTail(20))
	}
}

func TestTLSVerifyFull(t *testing.T) {
	c := Start(t, Options{TLS: true})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dsn := strings.Replace(c.ReplicationDSN(), "sslmode=require", "sslmode=verify-full sslrootcert="+c.CAFile, 1)
	if _, err := identifySystem(ctx, t, strings.Replace(dsn, "127.0.0.1", "localhost", 1)); err != nil {
		t.Fatalf("verify-full with the test CA: %v", err)
	}
	other, _, err := NewCA("other CA")
	if err != nil {
		t.Fatal(err)
	}
	wrong := filepath.Join(t.TempDir(), "other.crt")
	if err := os.WriteFile(wrong, other, 0o644); err != nil {
		t.Fatal(err)
	}
	dsn = strings.Replace(c.ReplicationDSN(), "sslmode=require", "sslmode=verify-full sslrootcert="+wrong, 1)
	if _, err := identifySystem(ctx, t, dsn); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("wrong CA: got %v", err)
	}
}

func TestStandbyPromote(t *testing.T) {
	p := Start(t, Options{})
	s := p.Standby(t)
	if got := s.QueryValue(t, "select pg_is_in_recovery()"); got != "true" {
		t.Fatalf("standby in recovery = %s", got)
	}
	s.Promote(t)
	if got := s.QueryValue(t, "select timeline_id from pg_control_checkpoint()"); got != "2" {
		// the checkpoint after promotion may lag; the WAL insert timeline is what matters
		tl := s.QueryValue(t, "select substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)")
		if tl != "00000002" {
			t.Fatalf("promoted standby timeline: checkpoint %s, wal file %s", got, tl)
		}
	}
}
