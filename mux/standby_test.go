package mux_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walweave/walweave/internal/pgtest"
	"github.com/walweave/walweave/mux"
)

// TestBackupOfStandby: a backup of a standby carries the standby's
// standby.signal and primary_conninfo by default (StandbyKeep, as pg_basebackup); with
// StandbyDrop it carries neither, and the restored copy comes up as a primary of its own.
func TestBackupOfStandby(t *testing.T) {
	p := pgtest.Start(t, pgtest.Options{})
	p.Exec(t, "create table t (i int); insert into t values (1)")
	s := p.Standby(t)
	for _, mode := range []mux.StandbyConfig{mux.StandbyKeep, mux.StandbyDrop} {
		t.Run(string(mode), func(t *testing.T) {
			path, _, err := backupToFile(t, context.Background(), nil, mux.Config{ConnString: s.DSN(),
				Checkpoint: mux.CheckpointFast, StandbyConfig: mode})
			if err != nil {
				t.Fatal(err)
			}
			signal := false
			for _, m := range pgtest.ListTar(t, path) {
				signal = signal || m.Name == "standby.signal"
			}
			dir := s.Extract(t, path)
			conf, err := os.ReadFile(filepath.Join(dir, "postgresql.auto.conf"))
			if err != nil {
				t.Fatal(err)
			}
			conninfo := strings.Contains(string(conf), "primary_conninfo")
			if want := mode == mux.StandbyKeep; signal != want || conninfo != want {
				t.Fatalf("%s: standby.signal %v, primary_conninfo %v; want %v:\n%s", mode, signal, conninfo, want, conf)
			}
			if mode == mux.StandbyDrop {
				s.RestoreDrill(t, path, pgtest.Drill{Queries: map[string]string{
					"select pg_is_in_recovery()": "false", "select count(*) from t": "1"}})
			}
		})
	}
}
