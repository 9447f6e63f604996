package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/walweave/walweave/fleet"
	"github.com/walweave/walweave/internal/pgtest"
)

func fleetClusters(t *testing.T, n int) []*pgtest.Cluster {
	var cs []*pgtest.Cluster
	for range n {
		c := pgtest.Start(t, pgtest.Options{})
		c.Exec(t, "GRANT EXECUTE ON FUNCTION pg_create_restore_point(text) TO "+pgtest.ReplicationUser)
		c.Exec(t, "CREATE TABLE filler AS SELECT g, repeat(md5(g::text), 7) AS pad FROM generate_series(1, 60000) g")
		cs = append(cs, c)
	}
	return cs
}

// TestFleetCLIBackupRestore: walweave fleet backup to -o 'DIR/{node}.tar' with a fence and a
// JSON report, then walweave fleet restore of both nodes; each copy starts, stops at the
// restore point and promotes.
func TestFleetCLIBackupRestore(t *testing.T) {
	cs := fleetClusters(t, 2)
	dir := t.TempDir()
	reportPath := filepath.Join(t.TempDir(), "report.json")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	_, stderr, code := walweave(t, ctx, nil, "fleet", "backup", "--node", "a="+cs[0].DSN(), "--node", "b="+cs[1].DSN(),
		"-c", "fast", "--fence", "advisory:77@a", "--memory-budget", "64M", "--max-rate-total", "512M",
		"-o", filepath.Join(dir, "{node}.tar"), "--report", reportPath, "--restore-point", "cli-point", "-P")
	t.Logf("stderr:\n%s", stderr)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"NODE", "RESTORE POINT LSN", "walweave: a: done", "fleet backup complete: 2 nodes, restore point \"cli-point\""} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q", want)
		}
	}
	for _, c := range cs {
		if strings.Contains(stderr, c.ReplPassword) {
			t.Fatal("a password is on stderr")
		}
	}
	var rep fleet.Report
	b, err := os.ReadFile(reportPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("report: %v\n%s", err, b)
	}
	if !rep.OK || len(rep.Nodes) != 2 || rep.Nodes[0].RestorePointLSN == "" || rep.Nodes[1].State != fleet.StateDone {
		t.Fatalf("report: %s", b)
	}
	root, err := cs[0].NewDir("fleet-restore")
	if err != nil {
		t.Fatal(err)
	}
	_, stderr, code = walweave(t, ctx, nil, "fleet", "restore", "--node", "a", "--node", "b",
		"--from-exec", "cat "+dir+"/$WALWEAVE_NODE.tar", "-D", filepath.Join(root, "{node}"), "-P")
	t.Logf("restore stderr:\n%s", stderr)
	if code != 0 {
		t.Fatalf("restore exit %d", code)
	}
	if !strings.Contains(stderr, "cli-point") {
		t.Errorf("the restore table does not show the restore point")
	}
	for i, n := range []string{"a", "b"} {
		cs[i].VerifyBackup(t, filepath.Join(root, n)) // pg_verifybackup of the server's version
		r := pgtest.StartOn(t, filepath.Join(root, n), nil)
		deadline := time.Now().Add(time.Minute)
		for r.QueryValue(t, "select pg_is_in_recovery()") != "false" {
			if time.Now().After(deadline) {
				t.Fatalf("%s still in recovery:\n%s", n, r.LogTail(20))
			}
			time.Sleep(100 * time.Millisecond)
		}
		if !strings.Contains(r.Log(), `recovery stopping at restore point "cli-point"`) {
			t.Fatalf("%s: restore point not reached:\n%s", n, r.LogTail(20))
		}
	}
}

// TestFleetCLIRerunAdvice: in consistent mode a killed walsender fails the fleet, nothing is
// kept and the advice says the whole fleet must run again; in independent mode an unreachable
// node fails alone, the others are kept and the advice is the command with --only.
func TestFleetCLIRerunAdvice(t *testing.T) {
	cs := fleetClusters(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	dir := t.TempDir()
	killed := pgtest.WhenBackupsUnderWay(cs, time.Minute, cs[1].TerminateWALSender)
	start := time.Now()
	_, stderr, code := walweave(t, ctx, nil, "fleet", "backup", "--node", "a="+cs[0].DSN(), "--node", "b="+cs[1].DSN(),
		"-c", "fast", "-r", "1M", "-o", filepath.Join(dir, "{node}.tar"))
	if k := <-killed; k.Err != nil {
		t.Fatal(k.Err)
	}
	t.Logf("consistent, after %v, stderr:\n%s", time.Since(start), stderr)
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	for _, want := range []string{"b: WAL receiver", "nothing was kept", "the whole fleet must run again", "walweave fleet backup --node"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q", want)
		}
	}
	for _, c := range cs {
		if strings.Contains(stderr, c.ReplPassword) {
			t.Fatal("a password is on stderr")
		}
	}
	if strings.Contains(stderr, "--only") {
		t.Error("consistent mode advises --only")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("%d files left in the output directory", len(ents))
	}

	dir = t.TempDir()
	bad := strings.Replace(cs[1].DSN(), fmt.Sprintf("port=%d", cs[1].Port), "port=1", 1)
	_, stderr, code = walweave(t, ctx, nil, "fleet", "backup", "--node", "a="+cs[0].DSN(), "--node", "b="+bad,
		"-c", "fast", "--independent", "-o", filepath.Join(dir, "{node}.tar"))
	t.Logf("independent, stderr:\n%s", stderr)
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if !strings.Contains(stderr, "--only b") || !strings.Contains(stderr, "kept the backups of a") {
		t.Errorf("no rerun advice with --only b")
	}
	if _, err := os.Stat(filepath.Join(dir, "a.tar")); err != nil {
		t.Errorf("node a's backup was not kept: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "b.tar")); err == nil {
		t.Error("node b's backup exists")
	}
}

// TestFleetCLIUsage: usage errors exit 2 with a reason.
func TestFleetCLIUsage(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"fleet", "backup", "-o", "/tmp/{node}.tar"}, "no nodes"},
		{[]string{"fleet", "backup", "--node", "a=host=x", "--node", "b=host=y", "-o", "/tmp/x.tar"}, "must contain {node}"},
		{[]string{"fleet", "backup", "--node", "a=host=x"}, "exactly one of -o"},
		{[]string{"fleet", "backup", "--node", "a=host=x", "-o", "/tmp/{node}.tar", "--fence", "advisory:x@a"}, "64-bit integer"},
		{[]string{"fleet", "backup", "--node", "a=host=x", "-o", "/tmp/{node}.tar", "--independent", "--citus"}, "writes no restore point"},
		{[]string{"fleet", "backup", "--node", "a=host=x", "-d", "host=y", "-o", "/tmp/{node}.tar"}, "per node"},
		{[]string{"fleet", "restore", "--node", "a", "--node", "b", "--from", "/x/{node}.tar", "-D", "/x"}, "must contain {node}"},
	} {
		_, stderr, code := walweave(t, ctx, nil, c.args...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", c.args, code, stderr, c.want)
		}
	}
}

// TestFleetCLIExec: --exec runs one command per node with the stream on stdin ({node} and
// WALWEAVE_NODE), here with --compress lz4 and --independent; the streams are lz4 frames.
func TestFleetCLIExec(t *testing.T) {
	cs := fleetClusters(t, 2)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	_, stderr, code := walweave(t, ctx, nil, "fleet", "backup", "--node", "a="+cs[0].DSN(), "--node", "b="+cs[1].DSN(),
		"-c", "fast", "--independent", "--compress", "lz4", "--exec", "cat > "+dir+"/{node}.part && mv "+dir+"/{node}.part "+dir+"/$WALWEAVE_NODE.tar.lz4")
	t.Logf("stderr:\n%s", stderr)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, n := range []string{"a", "b"} {
		b, err := os.ReadFile(filepath.Join(dir, n+".tar.lz4"))
		if err != nil {
			t.Fatal(err)
		}
		if len(b) < 4 || string(b[:4]) != "\x04\x22\x4d\x18" {
			t.Fatalf("%s: not an lz4 frame", n)
		}
	}
}

// TestFleetCLISIGINT: SIGINT stops every node at once: exit 130, nothing kept, nothing left on
// the servers, the --exec commands terminated.
func TestFleetCLISIGINT(t *testing.T) {
	cs := fleetClusters(t, 2)
	dir := t.TempDir()
	cmd := exec.Command(binary, "fleet", "backup", "--node", "a="+cs[0].DSN(), "--node", "b="+cs[1].DSN(),
		"-c", "fast", "-r", "1M", "--exec", "cat > "+dir+"/{node}.part && mv "+dir+"/{node}.part "+dir+"/{node}.tar")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, c := range cs {
		for c.QueryValue(t, "select count(*) from pg_stat_replication where state in ('backup', 'streaming')") != "2" {
			if time.Now().After(deadline) {
				t.Fatal("backup did not start")
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	start := time.Now()
	_ = cmd.Process.Signal(syscall.SIGINT)
	_ = cmd.Wait()
	t.Logf("exited %v after SIGINT; stderr:\n%s", time.Since(start), stderr.String())
	if code := cmd.ProcessState.ExitCode(); code != 130 || !strings.Contains(stderr.String(), "interrupted; nothing was kept") {
		t.Fatalf("exit %d", code)
	}
	for _, n := range []string{"a", "b"} {
		if _, err := os.Stat(filepath.Join(dir, n+".tar")); err == nil {
			t.Errorf("node %s: the command completed", n)
		}
	}
	for _, c := range cs {
		deadline := time.Now().Add(15 * time.Second)
		for c.QueryValue(t, "select count(*) from pg_replication_slots") != "0" || c.QueryValue(t, "select count(*) from pg_stat_activity where backend_type = 'walsender'") != "0" {
			if time.Now().After(deadline) {
				t.Fatal("slots or walsenders left after SIGINT")
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// TestFleetNodesFileAndRerun: --nodes FILE is read (comments, blank lines, spaces in the
// connection string), and the rerun command keeps every argument but --only, shell-quoted.
func TestFleetNodesFileAndRerun(t *testing.T) {
	p := filepath.Join(t.TempDir(), "nodes")
	os.WriteFile(p, []byte("# the shards\na host=db1 user=backup\n\nb   host=db2 user=backup\n"), 0o600)
	var n nodeFlag
	if err := n.readFile(p); err != nil {
		t.Fatal(err)
	}
	if strings.Join(n.names, ",") != "a,b" || n.conns["b"] != "host=db2 user=backup" {
		t.Fatalf("read %v %v", n.names, n.conns)
	}
	got := rerunCommand([]string{"--nodes", p, "--only", "a,b", "-o", "/x/{node}.tar", "--exec=it's", "--only=c"}, []string{"b"})
	want := "walweave fleet backup --nodes " + p + " -o '/x/{node}.tar' '--exec=it'\\''s' --only b"
	if got != want {
		t.Fatalf("rerun command\n got %s\nwant %s", got, want)
	}
	_, stderr, code := walweave(t, context.Background(), nil, "fleet", "backup", "--nodes", p, "--only", "z", "-o", "/tmp/{node}.tar")
	if code != 2 || !strings.Contains(stderr, `--only: no node "z"`) {
		t.Fatalf("exit %d, %s", code, stderr)
	}
}
