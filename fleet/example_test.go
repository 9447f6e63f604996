package fleet_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"

	"github.com/walweave/walweave/fleet"
	"github.com/walweave/walweave/internal/pgtest"
	"github.com/walweave/walweave/mux"
)

// A consistent backup of two shards: one restore point across them, fenced by an advisory
// lock on shard a that the application takes in shared mode around its distributed commits.
// Each node's file is NAME.tar.tmp until every node is done; a failure leaves none.
func ExampleBackup() {
	shards, stop := scratchShards("a", "b") // throwaway servers; in real use, your shards
	defer stop()
	dir, _ := os.MkdirTemp("", "walweave-example")
	defer os.RemoveAll(dir)

	var nodes []fleet.Node
	for _, sh := range shards {
		nodes = append(nodes, fleet.Node{
			Name:          sh.name,
			ConnString:    sh.dsn,      // e.g. "host=shard-a user=backup" (REPLICATION)
			SQLConnString: sh.adminDSN, // a role that may run pg_create_restore_point
			Dest:          fleet.File(filepath.Join(dir, sh.name+".tar")),
		})
	}
	rep, err := fleet.Backup(context.Background(), nodes, fleet.Options{
		Config:       mux.Config{Checkpoint: mux.CheckpointFast},
		Fence:        fleet.Fence{Kind: fleet.FenceAdvisory, Key: 4242, Node: "a"},
		MemoryBudget: 512 << 20,
	})
	if err != nil {
		// Consistent mode is all or nothing: nothing was kept; run the whole fleet again.
		log.Fatalf("fleet backup failed (nodes %v): %v", rep.Failed(), err)
	}
	for _, n := range rep.Nodes {
		fmt.Println(n.Name, n.State, "at the fleet's restore point:", n.RestorePoint == rep.RestorePoint)
	}
	// Output:
	// a done at the fleet's restore point: true
	// b done at the fleet's restore point: true
}

type shard struct{ name, dsn, adminDSN string }

// scratchShards starts a throwaway PostgreSQL per name.
func scratchShards(names ...string) ([]shard, func()) {
	var out []shard
	var clusters []*pgtest.Cluster
	stop := func() {
		for _, c := range clusters {
			c.Close()
		}
	}
	for _, n := range names {
		c, err := pgtest.StartMain(pgtest.Options{})
		if err != nil {
			stop()
			log.Fatal(err)
		}
		clusters = append(clusters, c)
		out = append(out, shard{n, c.DSN(), c.SuperDSN("postgres")})
	}
	return out, stop
}

// Restore the three shards in parallel; each then starts, recovers to the restore point and
// promotes.
func ExampleRestore() {
	var nodes []fleet.RestoreNode
	for _, name := range []string{"a", "b", "c"} {
		nodes = append(nodes, fleet.RestoreNode{
			Name: name,
			Open: fleet.OpenFile("/backups/" + name + ".tar"),
			Dir:  "/srv/" + name + "/data",
		})
	}
	if _, err := fleet.Restore(context.Background(), nodes, fleet.RestoreOptions{}); err != nil {
		log.Fatal(err)
	}
}

// A node's stream read from a command's standard output (walweave fleet restore
// --from-exec): a command that fails ends the stream with its exit status and its last line
// on stderr.
func ExampleOpenCommand() {
	ctx := context.Background()
	for _, shell := range []string{`printf 'stream of %s' "$WALWEAVE_NODE"`, `echo "access denied" >&2; exit 3`} {
		rc, err := fleet.OpenCommand(shell, "a", nil)(ctx)
		if err != nil {
			log.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		fmt.Printf("%q %v\n", b, err)
	}
	// Output:
	// "stream of a" <nil>
	// "" command "echo \"access denied\" >&2; exit 3" exited with status 3 (its last line on stderr: "access denied")
}
