package fleet_test

import (
	"context"
	"fmt"
	"io"
	"log"

	"github.com/walweave/walweave/fleet"
	"github.com/walweave/walweave/mux"
)

// A consistent backup of three shards: one restore point across them, fenced by an advisory
// lock on shard a that the application takes in shared mode around its distributed commits.
func ExampleBackup() {
	var nodes []fleet.Node
	for _, name := range []string{"a", "b", "c"} {
		nodes = append(nodes, fleet.Node{
			Name:       name,
			ConnString: "host=shard-" + name + " user=backup",
			Dest:       fleet.File("/backups/" + name + ".tar"), // .tmp until every node is done
		})
	}
	rep, err := fleet.Backup(context.Background(), nodes, fleet.Options{
		Config:       mux.Config{Checkpoint: mux.CheckpointFast},
		Fence:        fleet.Fence{Kind: fleet.FenceAdvisory, Key: 4242, Node: "a"},
		MemoryBudget: 512 << 20,
	})
	for _, n := range rep.Nodes {
		fmt.Println(n.Name, n.State, n.RestorePoint, n.RestorePointLSN, n.Error)
	}
	if err != nil {
		// Consistent mode is all or nothing: nothing was kept; run the whole fleet again.
		log.Fatalf("fleet backup failed (nodes %v): %v", rep.Failed(), err)
	}
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
