package fleet_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walweave/walweave/fleet"
	"github.com/walweave/walweave/internal/pgtest"
)

// fenceKey is the advisory lock key of the drills' fence.
const fenceKey = 4242

// startFleet starts n clusters named a, b, c, ... with prepared transactions on and the
// replication role allowed to write restore points.
func startFleet(t *testing.T, n int, settings map[string]string) ([]*pgtest.Cluster, []string) {
	t.Helper()
	s := map[string]string{"max_prepared_transactions": "20", "wal_sender_timeout": "10s"}
	for k, v := range settings {
		s[k] = v
	}
	var cs []*pgtest.Cluster
	var names []string
	for i := range n {
		c := pgtest.Start(t, pgtest.Options{Settings: s})
		c.Exec(t, "GRANT EXECUTE ON FUNCTION pg_create_restore_point(text) TO "+pgtest.ReplicationUser)
		cs = append(cs, c)
		names = append(names, string(rune('a'+i)))
	}
	return cs, names
}

// fileNodes are the fleet's nodes writing DIR/<name>.tar.
func fileNodes(cs []*pgtest.Cluster, names []string, dir string) []fleet.Node {
	var nodes []fleet.Node
	for i, c := range cs {
		nodes = append(nodes, fleet.Node{Name: names[i], ConnString: c.DSN(), Dest: fleet.File(filepath.Join(dir, names[i]+".tar"))})
	}
	return nodes
}

// assertNothingLeft: no slot, no walsender, no backup in progress on any cluster.
func assertNothingLeft(t *testing.T, cs []*pgtest.Cluster) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for i, c := range cs {
		for {
			slots := c.QueryValue(t, "select count(*) from pg_replication_slots")
			senders := c.QueryValue(t, "select count(*) from pg_stat_activity where backend_type = 'walsender'")
			if slots == "0" && senders == "0" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %d: %s slots and %s walsenders left", i, slots, senders)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// noFinalFiles fails if dir holds a finished or temporary backup file.
func noFinalFiles(t *testing.T, dir string) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		t.Errorf("left in the output directory: %s", e.Name())
	}
}

// bank is the consistency drill's workload: accounts on every cluster, transfers between
// accounts on two different clusters, each a two-phase commit whose commit decision takes
// pg_advisory_xact_lock_shared(fenceKey) on the coordinator (cluster 0).
type bank struct {
	cs        []*pgtest.Cluster
	accounts  int
	total     int64
	stop      chan struct{}
	wg        sync.WaitGroup
	committed atomic.Int64
	errs      chan error
}

func newBank(t *testing.T, cs []*pgtest.Cluster) *bank {
	b := &bank{cs: cs, accounts: 10, stop: make(chan struct{}), errs: make(chan error, 16)}
	for _, c := range cs {
		c.Exec(t, "CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL)")
		c.Exec(t, fmt.Sprintf("INSERT INTO accounts SELECT g, 1000 FROM generate_series(1, %d) g", b.accounts))
		// Some bulk so that the data side takes a moment.
		c.Exec(t, "CREATE TABLE filler AS SELECT g, repeat('x', 200) AS pad FROM generate_series(1, 100000) g")
		b.total += int64(b.accounts) * 1000
	}
	return b
}

// conns opens one connection per cluster plus one to the coordinator.
func (b *bank) conns(ctx context.Context) ([]*pgx.Conn, *pgx.Conn, error) {
	var cs []*pgx.Conn
	for _, c := range b.cs {
		conn, err := pgx.Connect(ctx, c.SocketDSN("postgres"))
		if err != nil {
			return nil, nil, err
		}
		if _, err := conn.Exec(ctx, "SET lock_timeout = '20s'"); err != nil {
			return nil, nil, err
		}
		cs = append(cs, conn)
	}
	coord, err := pgx.Connect(ctx, b.cs[0].SocketDSN("postgres"))
	return cs, coord, err
}

// transfer moves amount from one account on cluster from to one on cluster to. hold, if not
// nil, is waited for between the two COMMIT PREPAREDs (the commit decision taken, half
// applied).
func (b *bank) transfer(ctx context.Context, conns []*pgx.Conn, coord *pgx.Conn, gid string, from, to int, amount int64, hold <-chan struct{}) error {
	account := 1 + rand.IntN(b.accounts-1)
	if hold != nil {
		account = b.accounts // its own row: the prepared transaction locks it
	}
	prep := func(c *pgx.Conn, delta int64) error {
		if _, err := c.Exec(ctx, "BEGIN"); err != nil {
			return err
		}
		if _, err := c.Exec(ctx, "UPDATE accounts SET balance = balance + $1 WHERE id = $2", delta, account); err != nil {
			return err
		}
		_, err := c.Exec(ctx, "PREPARE TRANSACTION '"+gid+"'")
		return err
	}
	// Prepared transactions keep their row locks, and no server sees a deadlock across
	// servers: prepare in the servers' order, so that no two transfers wait for each other.
	first, second := from, to
	if to < from {
		first, second = to, from
	}
	for _, n := range []int{first, second} {
		delta := amount
		if n == from {
			delta = -amount
		}
		if err := prep(conns[n], delta); err != nil {
			return fmt.Errorf("prepare on %d: %w", n, err)
		}
	}
	// The commit decision, under the shared fence lock.
	if _, err := coord.Exec(ctx, "BEGIN"); err != nil {
		return err
	}
	if _, err := coord.Exec(ctx, "SELECT pg_advisory_xact_lock_shared($1)", int64(fenceKey)); err != nil {
		return err
	}
	if _, err := conns[from].Exec(ctx, "COMMIT PREPARED '"+gid+"'"); err != nil {
		return err
	}
	if hold != nil {
		<-hold
	}
	if _, err := conns[to].Exec(ctx, "COMMIT PREPARED '"+gid+"'"); err != nil {
		return err
	}
	_, err := coord.Exec(ctx, "COMMIT")
	b.committed.Add(1)
	return err
}

// client runs fn in a goroutine with one connection per cluster plus one to the
// coordinator; an error goes to b.errs.
func (b *bank) client(fn func(ctx context.Context, conns []*pgx.Conn, coord *pgx.Conn) error) {
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		ctx := context.Background()
		conns, coord, err := b.conns(ctx)
		if err == nil {
			err = fn(ctx, conns, coord)
			for _, c := range append(conns, coord) {
				c.Close(ctx)
			}
		}
		if err != nil {
			b.errs <- err
		}
	}()
}

// run starts workers doing transfers until stop.
func (b *bank) run(t *testing.T, workers int) {
	for w := range workers {
		b.client(func(ctx context.Context, conns []*pgx.Conn, coord *pgx.Conn) error {
			for seq := 0; ; seq++ {
				select {
				case <-b.stop:
					return nil
				default:
				}
				from := rand.IntN(len(b.cs))
				to := (from + 1 + rand.IntN(len(b.cs)-1)) % len(b.cs)
				if err := b.transfer(ctx, conns, coord, fmt.Sprintf("w%d-%d", w, seq), from, to, 1+rand.Int64N(100), nil); err != nil {
					return err
				}
			}
		})
	}
}

// slowTransfer runs one transfer that stays half applied (committed on its source, prepared
// on its destination, the fence lock held) until release is closed.
func (b *bank) slowTransfer(t *testing.T, release <-chan struct{}) {
	b.client(func(ctx context.Context, conns []*pgx.Conn, coord *pgx.Conn) error {
		return b.transfer(ctx, conns, coord, "slow", 1, 2, 500, release)
	})
}

func (b *bank) halt(t *testing.T) {
	t.Helper()
	close(b.stop)
	b.wg.Wait()
	select {
	case err := <-b.errs:
		t.Fatalf("workload: %v", err)
	default:
	}
}

// fenceWaiting reports whether someone waits for the fence's exclusive advisory lock.
func fenceWaiting(c *pgtest.Cluster) bool {
	v, err := c.QueryValueDB(context.Background(), "postgres", "select count(*) from pg_locks where locktype = 'advisory' and not granted and mode = 'ExclusiveLock'")
	return err == nil && v != "0"
}

// checkRestored starts each restored directory, waits for the promotion at the restore
// point and returns the sum of balances and the prepared transactions left.
func checkRestored(t *testing.T, dirs []string, point string) (sum int64, prepared []string) {
	t.Helper()
	rs := make([]*pgtest.Cluster, len(dirs))
	errs := make([]error, len(dirs))
	var wg sync.WaitGroup
	for i, d := range dirs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rs[i], errs[i] = pgtest.StartOnErr(t, d, nil)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		deadline := time.Now().Add(60 * time.Second)
		for r.QueryValue(t, "select pg_is_in_recovery()") != "false" {
			if time.Now().After(deadline) {
				t.Fatalf("%s: still in recovery:\n%s", r.DataDir, r.LogTail(30))
			}
			time.Sleep(100 * time.Millisecond)
		}
		if want := fmt.Sprintf("recovery stopping at restore point \"%s\"", point); !strings.Contains(r.Log(), want) {
			t.Fatalf("%s: the log does not say %q:\n%s", r.DataDir, want, r.LogTail(30))
		}
		var s int64
		fmt.Sscan(r.QueryValue(t, "select sum(balance) from accounts"), &s)
		sum += s
		if g := r.QueryValue(t, "select coalesce(string_agg(gid, ','), '') from pg_prepared_xacts"); g != "" {
			prepared = append(prepared, strings.Split(g, ",")...)
		}
	}
	// A transaction prepared and not committed at the restore point stays prepared in the
	// copy: it had no commit decision (the fence guarantees that), so rolling it back is its
	// resolution; the sum must not change and nothing may stay prepared.
	for _, r := range rs {
		for _, gid := range strings.Split(r.QueryValue(t, "select coalesce(string_agg(gid, ','), '') from pg_prepared_xacts"), ",") {
			if gid != "" {
				r.Exec(t, "ROLLBACK PREPARED '"+gid+"'")
			}
		}
	}
	var after int64
	for _, r := range rs {
		var s int64
		fmt.Sscan(r.QueryValue(t, "select sum(balance) from accounts"), &s)
		after += s
		if n := r.QueryValue(t, "select count(*) from pg_prepared_xacts"); n != "0" {
			t.Errorf("%s: %s prepared transactions after resolving", r.DataDir, n)
		}
	}
	if after != sum {
		t.Errorf("sum %d before resolving the prepared transactions, %d after", sum, after)
	}
	return sum, prepared
}

func readFile(dir, name string) ([]byte, error) { return os.ReadFile(filepath.Join(dir, name)) }
