package fleet_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/walweave/walweave/fleet"
	"github.com/walweave/walweave/internal/pgtest"
	"github.com/walweave/walweave/mux"
)

// drill runs the consistency drill: transfers between accounts on three clusters, a fleet
// backup under that load (with the fence or without), a parallel restore, the three copies
// started; it returns the sum of balances and the total.
func drill(t *testing.T, fence fleet.FenceKind) (sum, total int64, prepared []string) {
	cs, names := startFleet(t, 3, nil)
	if fence == fleet.FenceCitus {
		fakeCitus(t, cs)
	}
	b := newBank(t, cs)
	total = b.total
	dir := t.TempDir()
	b.run(t, 2)
	// One transfer stays half applied until the fence waits for it (or, without a fence,
	// until the backup is over): without the fence the restore points fall in its middle.
	release := make(chan struct{})
	b.slowTransfer(t, release)
	stopWatch := make(chan struct{})
	var fenceSeen atomic.Bool
	go func() {
		for {
			select {
			case <-stopWatch:
				return
			case <-time.After(20 * time.Millisecond):
			}
			if fenceWaiting(cs[0]) {
				fenceSeen.Store(true)
				time.Sleep(500 * time.Millisecond) // the fence must really wait
				close(release)
				return
			}
		}
	}()
	time.Sleep(300 * time.Millisecond)
	opts := fleet.Options{Config: mux.Config{Checkpoint: mux.CheckpointFast}, RestorePoint: "drill-" + t.Name()}
	switch fence {
	case fleet.FenceAdvisory:
		opts.Fence = fleet.Fence{Kind: fleet.FenceAdvisory, Key: fenceKey, Node: names[0]}
	case fleet.FenceCitus:
		opts.Fence = fleet.Fence{Kind: fleet.FenceCitus, Node: names[0]}
	}
	rep, err := fleet.Backup(context.Background(), fileNodes(cs, names, dir), opts)
	close(stopWatch)
	select {
	case <-release:
	default:
		close(release)
	}
	b.halt(t)
	js, _ := json.MarshalIndent(rep, "", "  ")
	t.Logf("report: %s", js)
	if err != nil {
		t.Fatalf("fleet backup: %v", err)
	}
	if fence != fleet.FenceNone && !fenceSeen.Load() {
		t.Fatal("the fence never waited for the half-applied transfer")
	}
	t.Logf("%d transfers committed during the drill; restore point spread %v", b.committed.Load(), time.Duration(rep.RestorePointSpread))

	var rnodes []fleet.RestoreNode
	var dirs []string
	for i, n := range names {
		d, err := cs[i].NewDir("restored")
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, n+".tar")
		rnodes = append(rnodes, fleet.RestoreNode{Name: n, Dir: d, Open: func(context.Context) (io.ReadCloser, error) { return os.Open(path) }})
		dirs = append(dirs, d)
	}
	rrep, err := fleet.Restore(context.Background(), rnodes, fleet.RestoreOptions{})
	if err != nil {
		t.Fatalf("fleet restore: %v", err)
	}
	t.Logf("restored %d nodes in %v", len(rrep.Nodes), time.Duration(rrep.Duration))
	// PostgreSQL's own pg_verifybackup of the server's version (the WAL up to the backup's end
	// included) passes each restored node before it is started.
	for i, d := range dirs {
		if err := pgtest.Chown(d); err != nil { // pg_verifybackup runs as the server's user
			t.Fatal(err)
		}
		cs[i].VerifyBackup(t, d)
	}
	sum, prepared = checkRestored(t, dirs, opts.RestorePoint)
	t.Logf("sum of balances %d (total %d), prepared at the restore point: %v", sum, total, prepared)
	return sum, total, prepared
}

// TestConsistencyDrill: with the advisory fence, the restored fleet's balances add up.
func TestConsistencyDrill(t *testing.T) {
	sum, total, _ := drill(t, fleet.FenceAdvisory)
	if sum != total {
		t.Fatalf("sum of balances %d, want %d: a transfer is half applied at the restore point", sum, total)
	}
}

// TestConsistencyNegativeControl: without the fence, the restore points fall in the middle of
// a transfer whose commit decision was taken, and the balances do not add up: the check
// detects it.
func TestConsistencyNegativeControl(t *testing.T) {
	sum, total, _ := drill(t, fleet.FenceNone)
	if sum == total {
		t.Fatalf("sum of balances %d equals the total without a fence: the control shows nothing", sum)
	}
}

// TestConsistencyDrillCitus: the drill with --citus against a stand-in for Citus's
// citus_create_restore_point on the coordinator (the exclusive lock distributed commits take
// in shared mode, the coordinator's point, then every worker's through dblink; it returns the
// coordinator's LSN only, as Citus does).
func TestConsistencyDrillCitus(t *testing.T) {
	sum, total, _ := drill(t, fleet.FenceCitus)
	if sum != total {
		t.Fatalf("sum of balances %d, want %d", sum, total)
	}
}

// fakeCitus installs the stand-in citus_create_restore_point on cs[0].
func fakeCitus(t *testing.T, cs []*pgtest.Cluster) {
	body := fmt.Sprintf("PERFORM pg_advisory_xact_lock(%d);\n\tlsn := pg_create_restore_point(name);\n", fenceKey)
	for _, w := range cs[1:] {
		body += fmt.Sprintf("\tPERFORM * FROM dblink(%s, format('SELECT pg_create_restore_point(%%L)', name)) AS t(l pg_lsn);\n", quoteLiteral(w.SuperDSN("postgres")))
	}
	cs[0].Exec(t, "CREATE EXTENSION dblink")
	cs[0].Exec(t, "CREATE FUNCTION citus_create_restore_point(name text) RETURNS pg_lsn LANGUAGE plpgsql SECURITY DEFINER AS $f$\nDECLARE lsn pg_lsn;\nBEGIN\n\t"+body+"\tRETURN lsn;\nEND $f$")
	cs[0].Exec(t, "GRANT EXECUTE ON FUNCTION citus_create_restore_point(text) TO "+pgtest.ReplicationUser)
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
