package fleet_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/walweave/walweave/fleet"
	"github.com/walweave/walweave/internal/pgtest"
	"github.com/walweave/walweave/internal/pgtest/pgproxy"
	"github.com/walweave/walweave/mux"
	"github.com/walweave/walweave/restore"
)

func init() { zerolog.SetGlobalLevel(zerolog.Disabled) }

// fill adds about rows*250 bytes of table data.
func fill(t *testing.T, c *pgtest.Cluster, rows int) {
	c.Exec(t, fmt.Sprintf("CREATE TABLE filler AS SELECT g, repeat(md5(g::text), 7) AS pad FROM generate_series(1, %d) g", rows))
}

// TestFailOneCancelAll: node b's WAL walsender is terminated (or node b's server stopped)
// mid-backup: every node stops within seconds, nothing is left on the servers still up, no
// destination is finalized, and the report names b as failed and the others as cancelled.
func TestFailOneCancelAll(t *testing.T) {
	for _, how := range []string{"walsender", "server"} {
		t.Run(how, func(t *testing.T) {
			cs, names := startFleet(t, 3, nil)
			for _, c := range cs {
				fill(t, c, 100000)
			}
			dir := t.TempDir()
			kill := func() error {
				if how == "server" {
					return cs[1].Stop()
				}
				return cs[1].TerminateWALSender()
			}
			killed := pgtest.WhenBackupsUnderWay(cs, time.Minute, kill)
			rep, err := fleet.Backup(context.Background(), fileNodes(cs, names, dir), fleet.Options{
				Config: mux.Config{Checkpoint: mux.CheckpointFast, MaxRate: 2 << 20},
				Fence:  fleet.Fence{Kind: fleet.FenceAdvisory, Key: fenceKey, Node: "a"},
			})
			k := <-killed
			if k.Err != nil {
				t.Fatal(k.Err)
			}
			took := time.Since(k.At)
			if err == nil {
				t.Fatal("the fleet backup succeeded with a node killed")
			}
			t.Logf("error %v after the kill: %v", took, err)
			if took > 10*time.Second {
				t.Fatalf("the fleet took %v after the kill to stop", took)
			}
			var fe *fleet.Error
			if !errors.As(err, &fe) || fe.Node != "b" {
				t.Fatalf("error %v does not name node b", err)
			}
			for _, n := range rep.Nodes {
				t.Logf("%s: %s %s after %v: %s", n.Name, n.State, n.Phase, time.Duration(n.Duration), n.Error)
				want := fleet.StateCancelled
				if n.Name == "b" {
					want = fleet.StateFailed
				}
				if n.State != want {
					t.Errorf("node %s: state %s, want %s", n.Name, n.State, want)
				}
			}
			if got := rep.Failed(); len(got) != 3 {
				t.Errorf("Failed() = %v, want every node", got)
			}
			noFinalFiles(t, dir)
			up := []*pgtest.Cluster{cs[0], cs[2]}
			if how == "walsender" {
				up = cs
			}
			assertNothingLeft(t, up)
		})
	}
}

// TestCommandAbortedOnFailure: with Command destinations, a failure terminates every node's
// command (SIGTERM to its process group), so an uploader never completes a partial object.
func TestCommandAbortedOnFailure(t *testing.T) {
	cs, names := startFleet(t, 2, nil)
	for _, c := range cs {
		fill(t, c, 50000)
	}
	dir := t.TempDir()
	var nodes []fleet.Node
	for i, c := range cs {
		// The "uploader" writes .part, and renames it only at the end of its input; SIGTERM
		// leaves a marker.
		sh := fmt.Sprintf(`exec 3<&0; trap 'echo terminated > %[1]s/%[2]s.term; exit 143' TERM; cat <&3 > %[1]s/%[2]s.part & wait $!; mv %[1]s/%[2]s.part %[1]s/%[2]s.tar`, dir, names[i])
		nodes = append(nodes, fleet.Node{Name: names[i], ConnString: c.DSN(), Dest: fleet.Command(sh, names[i], nil, nil)})
	}
	killed := pgtest.WhenBackupsUnderWay(cs, time.Minute, cs[0].TerminateWALSender)
	_, err := fleet.Backup(context.Background(), nodes, fleet.Options{Config: mux.Config{Checkpoint: mux.CheckpointFast, MaxRate: 1 << 20}})
	if k := <-killed; k.Err != nil {
		t.Fatal(k.Err)
	}
	if err == nil {
		t.Fatal("succeeded with a walsender killed")
	}
	t.Logf("error: %v", err)
	for _, n := range names {
		if _, err := readFile(dir, n+".tar"); err == nil {
			t.Errorf("node %s: the command completed its upload", n)
		}
		if _, err := readFile(dir, n+".term"); err != nil {
			t.Errorf("node %s: the command was not sent SIGTERM", n)
		}
	}
	assertNothingLeft(t, cs)
}

// TestSlowNodeBudget: node c is bandwidth-capped through a proxy while a and b are fast and
// all three generate WAL: a and b wait at the barrier with their WAL queued, bounded by the
// shared memory budget; nobody's walsender times out (wal_sender_timeout 10s, well under the
// wait at the barrier: c's 25 MB at 1500 kB/s take over 15 s) and the backup completes and
// restores. (At 5 s a receiver starved of CPU for that long on a loaded 2-core machine was
// cut off once; the replies while blocked are what is tested, and 10 s still needs them.)
func TestSlowNodeBudget(t *testing.T) {
	cs, names := startFleet(t, 3, map[string]string{"wal_sender_timeout": "10s"})
	for _, c := range cs {
		c.PgbenchInit(t, 1)
	}
	dir := t.TempDir()
	nodes := fileNodes(cs, names, dir)
	p, dsn := pgproxy.To(t, cs[2])
	nodes[2].ConnString = dsn
	pgproxy.AddToxic(t, p, `{"name":"bw","type":"bandwidth","stream":"downstream","toxicity":1,"attributes":{"rate":1500}}`)
	var loads []*pgtest.Load
	for _, c := range cs {
		loads = append(loads, c.StartLoad(t, 1))
	}
	// WAL segments come fast on a and b (a switch every 200 ms): without the budget their
	// rings would fill to their 24 slots each while they wait for c at the barrier.
	stopSwitch := make(chan struct{})
	switched := make(chan struct{})
	go func() {
		defer close(switched)
		for {
			select {
			case <-stopSwitch:
				return
			case <-time.After(200 * time.Millisecond):
			}
			for _, c := range cs[:2] {
				_ = c.ExecContext(context.Background(), "SELECT pg_switch_wal()")
			}
		}
	}()
	const budget = 48 << 20
	rep, err := fleet.Backup(context.Background(), nodes, fleet.Options{
		Config:       mux.Config{Checkpoint: mux.CheckpointFast},
		MemoryBudget: budget,
	})
	close(stopSwitch)
	<-switched
	for _, l := range loads {
		_ = l.Stop()
	}
	if err != nil {
		t.Fatalf("fleet backup: %v", err)
	}
	for _, n := range rep.Nodes {
		t.Logf("%s: %v, %d WAL segments, ring high water %d, WAL receiver blocked %v", n.Name, time.Duration(n.Duration), n.WALSegments, n.Result.RingHighWater, n.Result.WALBlocked.Round(time.Millisecond))
	}
	t.Logf("budget: %+v", *rep.Budget)
	if rep.Budget.HighWater > budget+int64(len(nodes))*16<<20 {
		t.Fatalf("budget high water %d over the limit %d plus one segment per ring", rep.Budget.HighWater, budget)
	}
	if rep.Budget.Waits == 0 {
		t.Fatal("the budget never made a ring wait: the test shows nothing")
	}
	var dirs []string
	for i, n := range names {
		dirs = append(dirs, cs[i].Extract(t, dir+"/"+n+".tar"))
	}
	for _, d := range dirs {
		r := pgtest.StartOn(t, d, nil)
		deadline := time.Now().Add(60 * time.Second)
		for r.QueryValue(t, "select pg_is_in_recovery()") != "false" {
			if time.Now().After(deadline) {
				t.Fatalf("still in recovery:\n%s", r.LogTail(20))
			}
			time.Sleep(100 * time.Millisecond)
		}
		if !strings.Contains(r.Log(), "recovery stopping at restore point") {
			t.Fatalf("no restore point reached:\n%s", r.LogTail(20))
		}
	}
}

// TestIndependentMode: a node that cannot connect fails alone; the others finish and their
// destinations are committed; no restore point is written.
func TestIndependentMode(t *testing.T) {
	cs, names := startFleet(t, 2, nil)
	dir := t.TempDir()
	nodes := fileNodes(cs, names, dir)
	nodes = append(nodes, fleet.Node{Name: "down", ConnString: strings.Replace(cs[0].DSN(), fmt.Sprintf("port=%d", cs[0].Port), "port=1", 1), Dest: fleet.File(dir + "/down.tar")})
	rep, err := fleet.Backup(context.Background(), nodes, fleet.Options{Independent: true, Config: mux.Config{Checkpoint: mux.CheckpointFast}})
	var fe *fleet.Error
	if !errors.As(err, &fe) || fe.Node != "down" {
		t.Fatalf("error %v does not name node down", err)
	}
	for _, n := range rep.Nodes {
		t.Logf("%s: %s %s", n.Name, n.State, n.Error)
		want := fleet.StateDone
		if n.Name == "down" {
			want = fleet.StateFailed
		}
		if n.State != want || n.RestorePoint != "" {
			t.Errorf("node %s: %s, restore point %q", n.Name, n.State, n.RestorePoint)
		}
	}
	if got := rep.Failed(); len(got) != 1 || got[0] != "down" {
		t.Errorf("Failed() = %v", got)
	}
	for _, n := range names {
		if _, err := readFile(dir, n+".tar"); err != nil {
			t.Errorf("node %s: %v", n, err)
		}
	}
	if _, err := readFile(dir, "down.tar.tmp"); err == nil {
		t.Error("the failed node's temporary file is left")
	}
}

// TestFenceTimeout: a distributed commit that holds the shared fence lock and never finishes
// makes the fleet give up after FenceTimeout with an error naming the fence's node; nothing
// is kept and nothing is left on the servers.
func TestFenceTimeout(t *testing.T) {
	cs, names := startFleet(t, 2, nil)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, cs[0].SocketDSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock_shared($1)", int64(fenceKey)); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	start := time.Now()
	rep, err := fleet.Backup(ctx, fileNodes(cs, names, dir), fleet.Options{
		Config:       mux.Config{Checkpoint: mux.CheckpointFast},
		Fence:        fleet.Fence{Kind: fleet.FenceAdvisory, Key: fenceKey, Node: "a"},
		FenceTimeout: 2 * time.Second,
	})
	t.Logf("after %v: %v", time.Since(start), err)
	var fe *fleet.Error
	if !errors.As(err, &fe) || fe.Node != "a" || !strings.Contains(err.Error(), "take the fence") {
		t.Fatalf("error %v: want the fence on node a", err)
	}
	for _, n := range rep.Nodes {
		if n.State != fleet.StateCancelled || n.RestorePointLSN != "" {
			t.Errorf("node %s: %s, restore point %q", n.Name, n.State, n.RestorePointLSN)
		}
	}
	noFinalFiles(t, dir)
	assertNothingLeft(t, cs)
}

// TestPrecheck: a role that may not write a restore point fails the fleet before any backup
// starts, naming the node and the GRANT to run.
func TestPrecheck(t *testing.T) {
	cs, names := startFleet(t, 2, nil)
	cs[1].Exec(t, "REVOKE EXECUTE ON FUNCTION pg_create_restore_point(text) FROM "+pgtest.ReplicationUser)
	dir := t.TempDir()
	rep, err := fleet.Backup(context.Background(), fileNodes(cs, names, dir), fleet.Options{})
	t.Logf("%v", err)
	var fe *fleet.Error
	if !errors.As(err, &fe) || fe.Node != "b" || !strings.Contains(err.Error(), "GRANT EXECUTE ON FUNCTION pg_create_restore_point(text)") {
		t.Fatalf("error %v", err)
	}
	for _, n := range rep.Nodes {
		if n.State != fleet.StatePending {
			t.Errorf("node %s started: %s", n.Name, n.State)
		}
	}
	noFinalFiles(t, dir)
}

// TestRestoreFailOneCancelAll: one node's stream is broken; the restore fails naming it and
// every node that did not finish is cancelled, its directory cleaned.
func TestRestoreFailOneCancelAll(t *testing.T) {
	cs, names := startFleet(t, 2, nil)
	for _, c := range cs {
		fill(t, c, 100000)
	}
	dir := t.TempDir()
	if _, err := fleet.Backup(context.Background(), fileNodes(cs, names, dir), fleet.Options{Config: mux.Config{Checkpoint: mux.CheckpointFast}}); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	// a and b send their first MiB and then nothing until they are cancelled: they cannot
	// finish before the broken node fails, so the test sees them cancelled.
	stalled := func(path string) func(context.Context) (io.ReadCloser, error) {
		return func(ctx context.Context) (io.ReadCloser, error) {
			f, err := os.Open(path)
			return struct {
				io.Reader
				io.Closer
			}{io.MultiReader(io.LimitReader(f, 1<<20), ctxBlock{ctx}), f}, err
		}
	}
	nodes := []fleet.RestoreNode{
		{Name: "a", Dir: root + "/a", Open: stalled(dir + "/a.tar")},
		{Name: "b", Dir: root + "/b", Open: stalled(dir + "/b.tar")},
		{Name: "broken", Dir: root + "/broken", Open: func(context.Context) (io.ReadCloser, error) {
			f, err := os.Open(dir + "/b.tar")
			return struct {
				io.Reader
				io.Closer
			}{io.LimitReader(f, 4<<20), f}, err
		}},
	}
	rep, err := fleet.Restore(context.Background(), nodes, fleet.RestoreOptions{Restore: restore.Options{NoSync: true}})
	var fe *fleet.Error
	if !errors.As(err, &fe) || fe.Node != "broken" {
		t.Fatalf("error %v does not name the broken node", err)
	}
	if len(rep.Nodes) != 3 {
		t.Fatalf("report of %d nodes, want 3", len(rep.Nodes))
	}
	for _, n := range rep.Nodes {
		t.Logf("%s: %s after %v, %d bytes: %s", n.Name, n.State, time.Duration(n.Duration), n.Bytes, n.Error)
		want := fleet.StateCancelled
		if n.Name == "broken" {
			want = fleet.StateFailed
		}
		if n.State != want {
			t.Errorf("node %s: state %s, want %s", n.Name, n.State, want)
		}
		if ents, _ := os.ReadDir(n.Dir); len(ents) != 0 {
			t.Errorf("node %s: %d entries left in %s", n.Name, len(ents), n.Dir)
		}
	}
}

// ctxBlock is a reader that sends nothing until ctx ends, then fails with ctx's error.
type ctxBlock struct{ ctx context.Context }

func (b ctxBlock) Read([]byte) (int, error) {
	<-b.ctx.Done()
	return 0, b.ctx.Err()
}

// TestFlushByWALWriter: when the flushing commit cannot run (here the role may not call
// pg_current_xact_id), the restore point still reaches the stream once the WAL writer
// flushes it.
func TestFlushByWALWriter(t *testing.T) {
	cs, names := startFleet(t, 1, nil)
	cs[0].Exec(t, "REVOKE EXECUTE ON FUNCTION pg_current_xact_id() FROM PUBLIC")
	dir := t.TempDir()
	var logs bytes.Buffer
	rep, err := fleet.Backup(context.Background(), fileNodes(cs, names, dir), fleet.Options{Config: mux.Config{Checkpoint: mux.CheckpointFast}, RestorePoint: "walwriter",
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "waiting for the WAL writer") {
		t.Fatalf("the flushing commit did not fail; logs: %s", logs.String())
	}
	t.Logf("restore point %s at %s, barrier to point delivered %v", rep.RestorePoint, rep.Nodes[0].RestorePointLSN, time.Duration(rep.RestorePointTime))
	r := pgtest.StartOn(t, cs[0].Extract(t, dir+"/a.tar"), nil)
	deadline := time.Now().Add(time.Minute)
	for r.QueryValue(t, "select pg_is_in_recovery()") != "false" {
		if time.Now().After(deadline) {
			t.Fatalf("still in recovery:\n%s", r.LogTail(20))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(r.Log(), `recovery stopping at restore point "walwriter"`) {
		t.Fatalf("restore point not reached:\n%s", r.LogTail(20))
	}
}
