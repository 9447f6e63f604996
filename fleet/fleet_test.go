package fleet_test

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/walweave/walweave/fleet"
	"github.com/walweave/walweave/mux"
)

// drill runs the consistency drill: transfers between accounts on three clusters, a fleet
// backup under that load (with the fence or without), a parallel restore, the three copies
// started; it returns the sum of balances and the total.
func drill(t *testing.T, fence bool) (sum, total int64, prepared []string) {
	cs, names := startFleet(t, 3, nil)
	b := newBank(t, cs)
	total = b.total
	dir := t.TempDir()
	b.run(t, 2)
	// One transfer stays half applied until the fence waits for it (or, without a fence,
	// until the backup is over): without the fence the restore points fall in its middle.
	release := make(chan struct{})
	b.slowTransfer(t, release)
	stopWatch := make(chan struct{})
	go func() {
		for {
			select {
			case <-stopWatch:
				return
			case <-time.After(20 * time.Millisecond):
			}
			if fenceWaiting(cs[0]) {
				time.Sleep(500 * time.Millisecond) // the fence must really wait
				close(release)
				return
			}
		}
	}()
	time.Sleep(300 * time.Millisecond)
	opts := fleet.Options{Config: mux.Config{Checkpoint: mux.CheckpointFast}, RestorePoint: "drill-" + t.Name()}
	if fence {
		opts.Fence = fleet.Fence{Kind: fleet.FenceAdvisory, Key: fenceKey, Node: names[0]}
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
	sum, prepared = checkRestored(t, dirs, opts.RestorePoint)
	t.Logf("sum of balances %d (total %d), prepared at the restore point: %v", sum, total, prepared)
	return sum, total, prepared
}

// TestConsistencyDrill: with the advisory fence, the restored fleet's balances add up.
func TestConsistencyDrill(t *testing.T) {
	sum, total, _ := drill(t, true)
	if sum != total {
		t.Fatalf("sum of balances %d, want %d: a transfer is half applied at the restore point", sum, total)
	}
}

// TestConsistencyNegativeControl: without the fence, the restore points fall in the middle of
// a transfer whose commit decision was taken, and the balances do not add up: the check
// detects it.
func TestConsistencyNegativeControl(t *testing.T) {
	sum, total, _ := drill(t, false)
	if sum == total {
		t.Fatalf("sum of balances %d equals the total without a fence: the control shows nothing", sum)
	}
}
