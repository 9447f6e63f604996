package pgtest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// StartOn starts a server on an existing data directory (a restored backup, or a standby
// made by Standby). The directory is chowned to the server user; its port, socket dir and
// listen address are set in postgresql.auto.conf-independent pgtest_port.conf via an
// include appended to postgresql.conf. The cluster is stopped and its base dir removed by
// t.Cleanup; the data directory itself is removed only if it lies under base.
func StartOn(t testing.TB, dataDir string, settings map[string]string) *Cluster {
	t.Helper()
	RequireAny(t)
	c, err := StartOnErr(t, dataDir, settings)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// StartOnErr is StartOn for another goroutine than the test's: it returns the error instead of
// failing the test (t.Fatal is for the test's goroutine only); the cleanup is registered all
// the same.
func StartOnErr(t testing.TB, dataDir string, settings map[string]string) (*Cluster, error) {
	srv, err := Selected()
	if err != nil {
		return nil, err
	}
	base, err := newBaseDir()
	if err != nil {
		return nil, err
	}
	c := &Cluster{BinDir: srv.BinDir, Version: srv.Major, Server: srv, Base: base, DataDir: dataDir,
		SockDir: filepath.Join(base, "sock"), LogFile: filepath.Join(base, "server.log")}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log tail (%s):\n%s", c.DataDir, c.LogTail(60))
		}
		c.Close()
	})
	if err := os.Mkdir(c.SockDir, 0o700); err != nil {
		return nil, err
	}
	if c.Port, err = freePort(); err != nil {
		return nil, err
	}
	conf := fmt.Sprintf("\n# pgtest restore\nport = %d\nunix_socket_directories = '%s'\nlisten_addresses = '127.0.0.1'\n", c.Port, c.SockDir)
	for k, v := range settings {
		conf += fmt.Sprintf("%s = '%s'\n", k, v)
	}
	p := filepath.Join(dataDir, "pgtest_port.conf")
	if err := os.WriteFile(p, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dataDir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	_, werr := f.WriteString("\ninclude_if_exists = 'pgtest_port.conf'\n")
	if err := f.Close(); werr == nil {
		werr = err
	}
	if werr != nil {
		return nil, werr
	}
	if err := os.Chmod(dataDir, 0o700); err != nil {
		return nil, err
	}
	if err := Chown(base); err != nil {
		return nil, err
	}
	if err := Chown(dataDir); err != nil {
		return nil, err
	}
	if err := c.startWith(); err != nil {
		return nil, err
	}
	return c, nil
}

// Standby makes a streaming standby of c with pg_basebackup -R -X stream (as PostgreSQL's own
// tests do) and starts it. Promote it with Promote to get a server on a new timeline. The
// installed pg_basebackup refuses servers newer than itself (the matrix uses Debian's 15
// client programs): then the standby is made the way pg_basebackup -R -X fetch would make it,
// from TarBackup's base.tar (WAL included), standby.signal and primary_conninfo.
func (c *Cluster) Standby(t testing.TB) *Cluster {
	t.Helper()
	dir, err := c.NewDir("standby")
	if err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if c.ClientCanBackUp() {
		if _, err := c.Run(ctx, "pg_basebackup", "-D", data, "-R", "-X", "stream", "-c", "fast",
			"-h", c.SockDir, "-p", strconv.Itoa(c.Port), "-U", Superuser); err != nil {
			t.Fatal(err)
		}
		if err := dropNewerConnOptions(data, c.Version); err != nil {
			t.Fatal(err)
		}
	} else {
		tars := filepath.Join(dir, "tar")
		if err := c.TarBackup(ctx, tars, TarBackupOptions{WAL: true, NoManifest: true}); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(data, 0o700); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("tar", "-xf", filepath.Join(tars, "base.tar"), "-C", data).CombinedOutput(); err != nil {
			t.Fatalf("tar -xf base.tar: %v\n%s", err, out)
		}
		_ = os.RemoveAll(tars)
		f, err := os.OpenFile(filepath.Join(data, "postgresql.auto.conf"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(f, "primary_conninfo = 'host=%s port=%d user=%s'\n", c.SockDir, c.Port, Superuser)
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(data, "standby.signal"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s := StartOn(t, data, nil)
	s.Password, s.ReplPassword, s.opts = c.Password, c.ReplPassword, c.opts
	return s
}

// Promote promotes a standby and waits until it accepts writes.
func (c *Cluster) Promote(t testing.TB) {
	t.Helper()
	c.Exec(t, "select pg_promote(true, 60)")
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if c.QueryValue(t, "select pg_is_in_recovery()") == "false" {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("pgtest: standby did not leave recovery")
}

// sslNegotiation matches the sslnegotiation keyword (libpq 17+) in a connection string.
var sslNegotiation = regexp.MustCompile(`sslnegotiation=\S+ ?`)

// dropNewerConnOptions removes from the primary_conninfo that a newer pg_basebackup -R wrote
// the keywords the server's own libpq does not know (sslnegotiation, written by 18's, is
// refused by a 16 or 17 walreceiver as an invalid connection option).
func dropNewerConnOptions(dataDir string, serverMajor int) error {
	if serverMajor >= 18 {
		return nil
	}
	p := filepath.Join(dataDir, "postgresql.auto.conf")
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	if fixed := sslNegotiation.ReplaceAll(b, nil); !bytes.Equal(fixed, b) {
		return os.WriteFile(p, fixed, 0o600)
	}
	return nil
}
