package pgtest

import (
	"archive/tar"
	"context"
	"io"
	"os"
	"os/exec"
	"strings"
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

// VerifyBackup runs pg_verifybackup (WAL check included) on an extracted backup.
func (c *Cluster) VerifyBackup(t testing.TB, dir string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := c.Run(ctx, "pg_verifybackup", dir)
	if err != nil {
		t.Fatalf("pg_verifybackup rejected the backup: %v", err)
	}
	return out
}

// RestoreDrill is the test that matters: extract the stream with tar, run pg_verifybackup
// on it, start PostgreSQL on it (it must reach consistency), run pg_amcheck on every
// database, check pgbench's invariant and the given queries. It returns the running restored
// cluster.
func (c *Cluster) RestoreDrill(t testing.TB, tarPath string, d Drill) *Cluster {
	t.Helper()
	dir := c.Extract(t, tarPath)
	if !d.SkipVerify {
		c.VerifyBackup(t, dir)
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
