package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walweave/walweave/mux"
)

func TestParseFence(t *testing.T) {
	for in, want := range map[string]Fence{
		"":                   {},
		"none":               {},
		"advisory:4242@a":    {Kind: FenceAdvisory, Key: 4242, Node: "a"},
		"advisory:-1@coord":  {Kind: FenceAdvisory, Key: -1, Node: "coord"},
		"citus@coordinator1": {Kind: FenceCitus, Node: "coordinator1"},
	} {
		got, err := ParseFence(in)
		if err != nil || got != want {
			t.Errorf("ParseFence(%q) = %+v, %v; want %+v", in, got, err, want)
		}
		if in != "" && in != "none" && got.String() != in {
			t.Errorf("%+v.String() = %q, want %q", got, got.String(), in)
		}
	}
	for _, bad := range []string{"advisory:x@a", "advisory:1", "advisory@a", "lock:1@a", "citus@"} {
		if _, err := ParseFence(bad); err == nil {
			t.Errorf("ParseFence(%q) accepted", bad)
		}
	}
}

func TestRecoverySettings(t *testing.T) {
	s := RecoverySettings("it's")
	for _, want := range []string{"recovery_target_name = 'it''s'\n", "recovery_target_action = 'promote'\n", "restore_command = 'false'\n", "recovery_target_timeline = 'latest'\n"} {
		if !strings.Contains(s, want) {
			t.Errorf("settings lack %q:\n%s", want, s)
		}
	}
}

// TestOptionsChecked: the configuration mistakes Backup refuses before it connects.
func TestOptionsChecked(t *testing.T) {
	dest := File(filepath.Join(t.TempDir(), "x.tar"))
	n := func(name string) Node { return Node{Name: name, ConnString: "host=/nonexistent", Dest: dest} }
	for _, c := range []struct {
		nodes []Node
		opts  Options
		want  string
	}{
		{nil, Options{}, "no nodes"},
		{[]Node{n("a"), n("a")}, Options{}, "given twice"},
		{[]Node{n("a b")}, Options{}, "without spaces"},
		{[]Node{{Name: "a"}}, Options{}, "no destination"},
		{[]Node{n("a")}, Options{Fence: Fence{Kind: FenceAdvisory, Node: "z"}}, "not one of the nodes"},
		{[]Node{n("a")}, Options{Independent: true, Fence: Fence{Kind: FenceAdvisory, Node: "a"}}, "consistent mode"},
		{[]Node{n("a")}, Options{Config: mux.Config{WriteRecoveryConf: true}}, "standby.signal"},
		{[]Node{n("a")}, Options{Config: mux.Config{Checkpoint: "slow"}}, "checkpoint"},
	} {
		rep, err := Backup(context.Background(), c.nodes, c.opts)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want %q", c.nodes, err, c.want)
		}
		for _, nr := range rep.Nodes {
			if nr.State != StatePending {
				t.Errorf("node %s started: %s", nr.Name, nr.State)
			}
		}
	}
}

// TestFileDestination: Close and Commit make the file, Abort removes the temporary file and
// never the committed one.
func TestFileDestination(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.tar")
	d, err := File(p)(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	d.Write([]byte("x"))
	d.Abort(errors.New("boom"))
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("left after Abort: %v", ents)
	}
	d, _ = File(p)(context.Background())
	d.Write([]byte("y"))
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Commit(); err != nil {
		t.Fatal(err)
	}
	d.Abort(nil)
	if b, err := os.ReadFile(p); err != nil || string(b) != "y" {
		t.Fatalf("committed file: %q, %v", b, err)
	}
}

// TestCommandDestination: the exit status counts; Abort terminates the process group.
func TestCommandDestination(t *testing.T) {
	d, err := Command(`cat > /dev/null; exit 3`, "a", nil, nil)(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	d.Write([]byte("data"))
	if err := d.Close(); err == nil || !strings.Contains(err.Error(), "exited with status 3") {
		t.Fatalf("Close: %v, want exited with status 3", err)
	}
	dir := t.TempDir()
	d, _ = Command(`sleep 60 & wait; echo done > `+dir+`/done`, "a", nil, nil)(context.Background())
	start := time.Now()
	d.Abort(errors.New("boom"))
	if time.Since(start) > 5*time.Second {
		t.Fatalf("Abort took %v", time.Since(start))
	}
	if _, err := os.Stat(filepath.Join(dir, "done")); err == nil {
		t.Fatal("the command went on after SIGTERM")
	}
}

func TestReportJSON(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	r := Report{Mode: "consistent", Duration: Seconds(1500 * time.Millisecond), Nodes: []NodeReport{{Name: "a", State: StateDone, RestorePointAt: &at, Duration: Seconds(time.Second)}}}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"duration_seconds":1.5`) || !strings.Contains(string(b), `"state":"done"`) {
		t.Fatalf("JSON: %s", b)
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil || back.Duration != r.Duration || back.Nodes[0].Name != "a" {
		t.Fatalf("round trip: %+v, %v", back, err)
	}
}

// TestRateSplit: MaxRateTotal is split evenly, never below the server's 32 kB/s, and lowers a
// larger per-node MaxRate only.
func TestRateSplit(t *testing.T) {
	dest := File(filepath.Join(t.TempDir(), "x.tar"))
	nodes := []Node{{Name: "a", Dest: dest}, {Name: "b", Dest: dest}, {Name: "c", Dest: dest}, {Name: "d", Dest: dest}}
	for _, c := range []struct{ perNode, total, want int64 }{
		{0, 0, 0},
		{0, 40 << 20, 10 << 20},
		{4 << 20, 40 << 20, 4 << 20},
		{20 << 20, 40 << 20, 10 << 20},
		{0, 64 << 10, 32 << 10},
	} {
		f, err := newFleet(nodes, Options{Config: mux.Config{MaxRate: c.perNode}, MaxRateTotal: c.total})
		if err != nil {
			t.Fatal(err)
		}
		if got := f.nodeConfig(2).MaxRate; got != c.want {
			t.Errorf("per node %d, total %d: %d, want %d", c.perNode, c.total, got, c.want)
		}
	}
}
