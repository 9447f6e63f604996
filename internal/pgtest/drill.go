package pgtest

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Drill is what RestoreDrill checks on a restored copy beyond the defaults.
type Drill struct {
	// Pgbench checks pgbench's invariant on the restored copy.
	Pgbench bool
	// Queries maps SQL (returning one value) to the value it must return on the copy.
	Queries map[string]string
	// Settings are extra settings for the restored server.
	Settings map[string]string
	// SkipVerify leaves out pg_verifybackup (for streams that are meant to fail it).
	SkipVerify bool
}

// Extract unpacks a tar file with GNU tar (not walweave's code) into a new directory owned
// by the server user and returns it.
func (c *Cluster) Extract(t testing.TB, tarPath string) string {
	t.Helper()
	dir, err := c.NewDir("restore")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("tar", "-xf", tarPath, "-C", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("tar -xf %s: %v\n%s", tarPath, err, out)
	}
	if err := Chown(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// VerifyBackup runs pg_verifybackup on an extracted backup with the program and options
// PGVerifyBackup picks for this server, and returns its output; "" when no installed
// pg_verifybackup can read this version's backups (PGVerifyBackup says when that fails the
// test).
func (c *Cluster) VerifyBackup(t testing.TB, dir string) string {
	t.Helper()
	path, args, ok := c.PGVerifyBackup(t)
	if !ok {
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := c.Run(ctx, path, append(args, dir)...)
	if err != nil {
		t.Fatalf("pg_verifybackup rejected the backup: %v", err)
	}
	t.Logf("%s: %s", strings.Join(append([]string{path}, args...), " "), strings.TrimSpace(out))
	return out
}

// OracleSetup is the command that installs the pg_verifybackup (with its pg_waldump, and from
// 17 pg_combinebackup) of each server version whose backups the suite checks with that
// version's own programs: Debian's 15, and 17's and 18's built from Debian's source packages.
// 16 has none here: no Debian suite carries PostgreSQL 16, so its backups are checked with
// another version's pg_verifybackup -n and walweave verify's WAL check, then by starting
// PostgreSQL on them, pg_amcheck and pgbench's invariant.
var OracleSetup = map[int]string{
	15: "scripts/setup.sh",
	17: "scripts/setup-pg17-tools.sh",
	18: "scripts/setup-pg18-src.sh",
}

// RequireOracle reports whether a missing program of the server's own version that OracleSetup
// names fails the test: under WALWEAVE_REQUIRE_PG=1 (CI) it does; otherwise the test says what
// is missing and goes on without it.
func RequireOracle() bool { return os.Getenv("WALWEAVE_REQUIRE_PG") == "1" }

// PGVerifyBackup returns the pg_verifybackup that checks this server's backups and its options:
//   - the server's own major version's (WAL included: it runs its own pg_waldump);
//   - else, for a backup of 15 or 16 (manifest version 1), another version's with -n:
//     pg_waldump reads only its own version's WAL (RestoreDrill then checks the WAL with
//     walweave verify);
//   - else none (ok false): from 17 the manifest (version 2) makes pg_verifybackup read
//     pg_control, which it refuses from another major (18's says "CRC is incorrect" of 17's),
//     and an older one refuses the manifest's version.
//
// When the server's own version's pg_verifybackup is missing for a version in OracleSetup,
// the test fails under WALWEAVE_REQUIRE_PG=1 (naming the setup command) and logs why otherwise.
func (c *Cluster) PGVerifyBackup(t testing.TB) (path string, args []string, ok bool) {
	t.Helper()
	return pgVerifyBackup(t, c.Server, Installed(), RequireOracle())
}

// pgVerifyBackup is PGVerifyBackup for the server srv among the installations inst.
func pgVerifyBackup(t testing.TB, srv Server, inst []Server, require bool) (path string, args []string, ok bool) {
	t.Helper()
	if s, ok := pickTool(srv, "pg_verifybackup", inst); ok {
		return filepath.Join(s.BinDir, "pg_verifybackup"), nil, true
	}
	missing := fmt.Sprintf("no pg_verifybackup %d is installed", srv.Major)
	if setup, ok := OracleSetup[srv.Major]; ok {
		missing += " (install it with " + setup + ")"
		if require {
			t.Fatalf("%s: WALWEAVE_REQUIRE_PG=1, a missing oracle is a failure", missing)
		}
	}
	if srv.Major >= 17 {
		t.Logf("%s; an older one refuses %s's manifest (version 2), a newer one its pg_control: pg_verifybackup not run", missing, srv)
		return "", nil, false
	}
	for _, s := range inst {
		if p := filepath.Join(s.BinDir, "pg_verifybackup"); fileExists(p) {
			t.Logf("%s: pg_verifybackup %s runs with -n (its pg_waldump cannot read %s's WAL)", missing, s.Version, srv)
			return p, []string{"-n"}, true
		}
	}
	t.Logf("%s, nor any other: pg_verifybackup not run", missing)
	return "", nil, false
}

// FullPGVerifyBackup reports whether pg_verifybackup checks this server's backups completely
// (the server's own version's, with its pg_waldump for the WAL); tests that compare its
// verdict with walweave's need that.
func (c *Cluster) FullPGVerifyBackup() bool {
	s, ok := c.Tool("pg_verifybackup")
	return ok && fileExists(filepath.Join(s.BinDir, "pg_waldump"))
}

// RestoreDrill is the test that matters: extract the stream with tar, check it (pg_verifybackup
// of the server's version; where that is missing, another version's with -n where it can read
// the manifest, and `walweave verify`), start PostgreSQL on it
// (it must reach consistency), run pg_amcheck on every database, check pgbench's invariant
// and the given queries. It returns the running restored cluster.
func (c *Cluster) RestoreDrill(t testing.TB, tarPath string, d Drill) *Cluster {
	t.Helper()
	dir := c.Extract(t, tarPath)
	if !d.SkipVerify {
		c.VerifyBackup(t, dir)
		if !c.FullPGVerifyBackup() {
			WalweaveVerify(t, tarPath)
		}
	}
	r := StartOn(t, dir, d.Settings)
	r.Password, r.ReplPassword = c.Password, c.ReplPassword
	if d.Queries[inRecovery] == "false" {
		// A recovery to a target that then promotes accepts connections once consistent,
		// before the promotion: wait for it rather than read the state too early.
		r.waitPromoted(t, 2*time.Minute)
	}
	r.CheckCopy(t, d.Pgbench, d.Queries)
	return r
}

// CheckCopy checks a started copy of a backup as RestoreDrill does: pg_amcheck on every
// database (once the copy is out of recovery), pgbench's invariant when pgbench is set, and
// each query (returning one value) against the value it must return.
func (r *Cluster) CheckCopy(t testing.TB, pgbench bool, queries map[string]string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if r.QueryValue(t, "select pg_is_in_recovery()") == "false" {
		if out, err := r.Run(ctx, "pg_amcheck", "--all", "--install-missing", "--heapallindexed"); err != nil {
			t.Fatalf("pg_amcheck on the restored copy: %v\n%s", err, out)
		}
	}
	if pgbench {
		if got := r.QueryValue(t, Invariant); got != "true" {
			t.Fatalf("pgbench invariant does not hold on the restored copy")
		}
	}
	for q, want := range queries {
		if got := r.QueryValue(t, q); got != want {
			t.Fatalf("on the restored copy, %s = %q, want %q", q, got, want)
		}
	}
}

var (
	walweaveOnce sync.Once
	walweaveBin  string
	walweaveErr  error
)

// WalweaveVerify runs `walweave verify` (built once per test process from this checkout) on a
// stream file and fails the test when it does not accept it. It stands in for pg_verifybackup
// on servers whose backups the installed pg_verifybackup cannot check.
func WalweaveVerify(t testing.TB, tarPath string) {
	t.Helper()
	walweaveOnce.Do(func() {
		root, err := os.MkdirTemp(baseRoot(), fmt.Sprintf("%d-walweave-", os.Getpid()))
		if err != nil {
			walweaveErr = err
			return
		}
		walweaveBin = filepath.Join(root, "walweave")
		out, err := exec.Command("go", "build", "-o", walweaveBin, "github.com/walweave/walweave/cmd/walweave").CombinedOutput()
		if err != nil {
			walweaveErr = fmt.Errorf("go build cmd/walweave: %v\n%s", err, out)
		}
	})
	if walweaveErr != nil {
		t.Fatal(walweaveErr)
	}
	f, err := os.Open(tarPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, walweaveBin, "verify")
	cmd.Stdin = f
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("walweave verify rejected the backup: %v\n%s", err, out)
	}
	t.Logf("walweave verify: %s", strings.TrimSpace(string(out)))
}

// TarMember is one entry of a tar listing.
type TarMember struct {
	Name string
	Size int64
	Mode int64
	Type byte
}

// ListTar lists a tar file with Go's archive/tar.
func ListTar(t testing.TB, path string) []TarMember {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []TarMember
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("listing %s: %v", path, err)
		}
		out = append(out, TarMember{Name: strings.TrimSuffix(h.Name, "/"), Size: h.Size, Mode: h.Mode, Type: h.Typeflag})
	}
}

const inRecovery = "select pg_is_in_recovery()"

// waitPromoted waits until the server has left recovery (a targeted recovery that promotes),
// polling pg_is_in_recovery(); it fails the test when that does not happen within limit.
func (c *Cluster) waitPromoted(t testing.TB, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for c.QueryValue(t, inRecovery) != "false" {
		if time.Now().After(deadline) {
			t.Fatalf("the restored copy is still in recovery after %s (recovery target not reached, or no promotion)", limit)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
