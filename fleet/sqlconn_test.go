package fleet_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walweave/walweave/fleet"
	"github.com/walweave/walweave/internal/pgtest"
	"github.com/walweave/walweave/mux"
)

// A node's refused SQL connection reads as one line (the server's message once, not pgconn's
// per-attempt chain), matches the sentinel for an ordinary connection, and has its advice.
func TestSQLConnectionRefused(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{})
	dir := t.TempDir()
	nodes := []fleet.Node{{Name: "a", ConnString: c.DSN(), SQLConnString: c.DSN() + " password=wrong dbname=postgres",
		Dest: fleet.File(filepath.Join(dir, "a.tar"))}}
	_, err := fleet.Backup(context.Background(), nodes, fleet.Options{Config: mux.Config{Checkpoint: mux.CheckpointFast}})
	t.Logf("error: %v", err)
	if !errors.Is(err, mux.ErrAuthentication) {
		t.Errorf("errors.Is(err, ErrAuthentication) is false")
	}
	if h := mux.Hint(err); !strings.Contains(h, "password") {
		t.Errorf("hint %q", h)
	}
	if strings.Contains(err.Error(), "failed to connect to") {
		t.Errorf("the error repeats pgconn's per-attempt text: %v", err)
	}
}
