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

// VerifyBackup runs pg_verifybackup (WAL check included) on an extracted backup, as far as
// the installed pg_verifybackup can read this server's backups (PGVerifyBackupArgs). It returns
// pg_verifybackup's output, or "" when it cannot check this version at all.
func (c *Cluster) VerifyBackup(t testing.TB, dir string) string {
	t.Helper()
	args, ok := c.PGVerifyBackupArgs(t)
	if !ok {
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := c.Run(ctx, "pg_verifybackup", append(args, dir)...)
	if err != nil {
		t.Fatalf("pg_verifybackup rejected the backup: %v", err)
	}
	return out
}

// PGVerifyBackupArgs returns the options pg_verifybackup needs for this server's backups, and
// false when it cannot check them at all (it logs why). The client programs are Debian's (15):
// pg_verifybackup 15 reads manifest version 1 only (17+ write version 2), and its pg_waldump
// reads only its own version's WAL (so on 16 it runs with -n, no WAL check). Where it falls
// short, RestoreDrill adds `walweave verify`, PostgreSQL's recovery and pg_amcheck.
func (c *Cluster) PGVerifyBackupArgs(t testing.TB) ([]string, bool) {
	t.Helper()
	cl, err := Client()
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case cl.Major >= c.Version:
		return nil, true
	case c.Version >= 17 && cl.Major < 17:
		t.Logf("pg_verifybackup %s cannot read %s's manifest (version 2): not run", cl.Version, c.Server)
		return nil, false
	default:
		t.Logf("pg_verifybackup %s runs with -n: its pg_waldump cannot read %s's WAL", cl.Version, c.Server)
		return []string{"-n"}, true
	}
}

// FullPGVerifyBackup reports whether pg_verifybackup checks this server's backups completely
// (WAL included); tests that compare its verdict with walweave's need that.
func (c *Cluster) FullPGVerifyBackup() bool {
	cl, err := Client()
	return err == nil && cl.Major >= c.Version
}

// RestoreDrill is the test that matters: extract the stream with tar, check it (pg_verifybackup
// where it can read this version's backups, else `walweave verify`), start PostgreSQL on it
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
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if r.QueryValue(t, "select pg_is_in_recovery()") == "false" {
		if out, err := r.Run(ctx, "pg_amcheck", "--all", "--install-missing", "--heapallindexed"); err != nil {
			t.Fatalf("pg_amcheck on the restored copy: %v\n%s", err, out)
		}
	}
	if d.Pgbench {
		if got := r.QueryValue(t, Invariant); got != "true" {
			t.Fatalf("pgbench invariant does not hold on the restored copy")
		}
	}
	for q, want := range d.Queries {
		if got := r.QueryValue(t, q); got != want {
			t.Fatalf("on the restored copy, %s = %q, want %q", q, got, want)
		}
	}
	return r
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
