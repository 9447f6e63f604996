// Command walarchive measures walweave's continuous WAL archiver against pg_receivewal, side by
// side in one run, under a pgbench write load:
//
//	ww       walweave wal stream -S bench_ww -o DIR
//	ww-zstd  walweave wal stream -S bench_wwz -o DIR --compress zstd
//	ww-lz4   walweave wal stream -S bench_wwl -o DIR --compress lz4
//	rw       pg_receivewal -S bench_rw -D DIR
//
// All run at once, each through its own replication slot, on a scratch cluster
// (internal/pgtest; WALWEAVE_PG selects the version) while pgbench writes for -duration. For
// each it reports the client CPU (user+sys from the child's rusage) per GiB of WAL the server
// wrote during the run, the peak RSS, and the largest flush lag seen: the server's WAL flush
// position minus the flush position the client reported (pg_stat_replication), sampled every
// -sample. The result is a Markdown table on stdout (and in -out FILE).
//
//	go run ./bench/walarchive -scale 10 -clients 4 -duration 60s -out bench/walarchive-results.md
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/walweave/walweave/internal/pgtest"
	"github.com/walweave/walweave/pgformat"
)

type contender struct {
	name    string
	slot    string
	args    []string // walweave wal stream arguments after the slot; nil for pg_receivewal
	cmd     *exec.Cmd
	maxLag  int64
	stopped bool
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench/walarchive:", err)
		os.Exit(1)
	}
}

func run() error {
	scale := flag.Int("scale", 10, "pgbench scale factor")
	clients := flag.Int("clients", 4, "pgbench clients")
	duration := flag.Duration("duration", 60*time.Second, "how long the write load runs")
	sample := flag.Duration("sample", 50*time.Millisecond, "flush lag sampling interval")
	out := flag.String("out", "", "also write the Markdown result to `FILE`")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c, err := pgtest.StartMain(pgtest.Options{Settings: map[string]string{"max_wal_size": "8GB", "wal_sender_timeout": "60s"}})
	if err != nil {
		return err
	}
	defer c.Close()
	tmp, err := os.MkdirTemp("", "walweave-bench-walarchive-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "walweave")
	if b, err := exec.Command("go", "build", "-o", bin, "./cmd/walweave").CombinedOutput(); err != nil {
		return fmt.Errorf("build walweave: %v\n%s", err, b)
	}
	fmt.Fprintf(os.Stderr, "PostgreSQL %d, pgbench scale %d\n", c.Version, *scale)
	if out, err := c.Run(ctx, "pgbench", "-i", "-q", "-s", strconv.Itoa(*scale), "postgres"); err != nil {
		return fmt.Errorf("pgbench -i: %v\n%s", err, out)
	}
	// The slots reserve WAL from the last checkpoint's redo point: make it now, so that the
	// archivers start near the current position instead of replaying pgbench -i's WAL.
	if err := c.ExecContext(ctx, "checkpoint"); err != nil {
		return err
	}
	cs := []*contender{
		{name: "ww", slot: "bench_ww", args: []string{}},
		{name: "ww-zstd", slot: "bench_wwz", args: []string{"--compress", "zstd"}},
		{name: "ww-lz4", slot: "bench_wwl", args: []string{"--compress", "lz4"}},
		{name: "rw", slot: "bench_rw"},
	}
	for _, ct := range cs {
		if err := c.ExecContext(ctx, "select pg_create_physical_replication_slot($1, true)", ct.slot); err != nil {
			return err
		}
		dir, err := c.NewDir(ct.name)
		if err != nil {
			return err
		}
		if ct.args == nil {
			ct.cmd = c.Command(ctx, "pg_receivewal", "-D", dir, "-S", ct.slot, "-n")
		} else {
			args := append([]string{"wal", "stream", "-d", c.DSN(), "-S", ct.slot, "-o", dir}, ct.args...)
			ct.cmd = exec.Command(bin, args...)
		}
		ct.cmd.Stderr = os.Stderr
		if err := ct.cmd.Start(); err != nil {
			return fmt.Errorf("%s: %w", ct.name, err)
		}
		defer func(ct *contender) {
			if !ct.stopped {
				_ = ct.cmd.Process.Kill()
				_ = ct.cmd.Wait()
			}
		}(ct)
	}
	// All streaming before the load starts.
	deadline := time.Now().Add(time.Minute)
	for {
		n, err := c.QueryValueDB(ctx, "postgres", "select count(*) from pg_stat_replication")
		if err != nil {
			return err
		}
		if n == strconv.Itoa(len(cs)) {
			break
		}
		if time.Now().After(deadline) {
			return errors.New("the archivers did not all connect")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// ... and caught up with the server before the load and the lag sampling start.
	f0, err := lsn(ctx, c, "select pg_current_wal_flush_lsn()")
	if err != nil {
		return err
	}
	for {
		n, err := c.QueryValueDB(ctx, "postgres", "select count(*) from pg_stat_replication where write_lsn >= $1::pg_lsn", f0.String())
		if err != nil {
			return err
		}
		if n == strconv.Itoa(len(cs)) {
			break
		}
		if time.Now().After(deadline) {
			return errors.New("the archivers did not catch up with the server")
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // a status update from each
	startLSN, err := lsn(ctx, c, "select pg_current_wal_insert_lsn()")
	if err != nil {
		return err
	}
	// The WAL each contender streams: from its slot's start.
	if first, err := lsn(ctx, c, "select min(restart_lsn) from pg_replication_slots where slot_name like 'bench_%'"); err == nil && first < startLSN {
		startLSN = first
	}
	load := c.Command(ctx, "pgbench", "-n", "-c", strconv.Itoa(*clients), "-j", strconv.Itoa(min(*clients, runtime.NumCPU())), "-T", strconv.Itoa(int(duration.Seconds())), "postgres")
	var mu sync.Mutex
	sctx, scancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sampleLag(sctx, c, cs, *sample, &mu)
	}()
	loadOut, loadErr := load.CombinedOutput()
	endLSN, err := lsn(ctx, c, "select pg_current_wal_insert_lsn()")
	if err != nil {
		scancel()
		wg.Wait()
		return err
	}
	// Let every contender catch up with the end before stopping.
	catchUp := time.Now().Add(2 * time.Minute)
	for time.Now().Before(catchUp) {
		v, err := c.QueryValueDB(ctx, "postgres", "select count(*) from pg_stat_replication where write_lsn >= $1::pg_lsn", endLSN.String())
		if err == nil && v == strconv.Itoa(len(cs)) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	scancel()
	wg.Wait()
	if loadErr != nil {
		return fmt.Errorf("pgbench: %v\n%s", loadErr, loadOut)
	}
	for _, ct := range cs {
		sig := syscall.SIGTERM
		if ct.args == nil {
			sig = syscall.SIGINT
		}
		_ = ct.cmd.Process.Signal(sig)
		_ = ct.cmd.Wait()
		ct.stopped = true
	}
	walBytes := int64(endLSN - startLSN)
	gib := float64(walBytes) / (1 << 30)
	var b strings.Builder
	fmt.Fprintf(&b, "## WAL archiving: walweave wal stream against pg_receivewal\n\n")
	fmt.Fprintf(&b, "PostgreSQL %d, pgbench scale %d, %d clients for %s: %.2f GiB of WAL (%s to %s); %d CPUs.\n\n",
		c.Version, *scale, *clients, *duration, gib, startLSN, endLSN, runtime.NumCPU())
	fmt.Fprintf(&b, "| contender | client CPU s | CPU s per GiB of WAL | peak RSS MiB | largest flush lag |\n|---|---|---|---|---|\n")
	for _, ct := range cs {
		ps := ct.cmd.ProcessState
		cpu := (ps.UserTime() + ps.SystemTime()).Seconds()
		rss := int64(0)
		if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
			rss = ru.Maxrss / 1024
		}
		mu.Lock()
		lag := ct.maxLag
		mu.Unlock()
		fmt.Fprintf(&b, "| %s | %.2f | %.2f | %d | %.1f MiB (%.2f segments) |\n", describe(ct), cpu, cpu/gib, rss,
			float64(lag)/(1<<20), float64(lag)/(16<<20))
	}
	fmt.Print(b.String())
	if *out != "" {
		return os.WriteFile(*out, []byte(b.String()), 0o644)
	}
	return nil
}

func describe(ct *contender) string {
	if ct.args == nil {
		return "`pg_receivewal`"
	}
	return "`" + strings.TrimSpace("walweave wal stream "+strings.Join(ct.args, " ")) + "`"
}

func lsn(ctx context.Context, c *pgtest.Cluster, q string) (pgformat.LSN, error) {
	v, err := c.QueryValueDB(ctx, "postgres", q)
	if err != nil {
		return 0, err
	}
	return pgformat.ParseLSN(v)
}

// sampleLag records, per slot, the largest insert position minus reported flush position.
func sampleLag(ctx context.Context, c *pgtest.Cluster, cs []*contender, every time.Duration, mu *sync.Mutex) {
	bySlot := map[string]*contender{}
	for _, ct := range cs {
		bySlot[ct.slot] = ct
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		v, err := c.QueryValueDB(ctx, "postgres", `select string_agg(s.slot_name || '=' || (pg_current_wal_flush_lsn() - coalesce(r.flush_lsn, s.restart_lsn))::bigint, ',')
			from pg_replication_slots s left join pg_stat_replication r on r.pid = s.active_pid where s.slot_name like 'bench_%'`)
		if err != nil {
			continue
		}
		mu.Lock()
		for _, kv := range strings.Split(v, ",") {
			name, n, ok := strings.Cut(kv, "=")
			lag, err := strconv.ParseInt(n, 10, 64)
			if ct := bySlot[name]; ok && err == nil && ct != nil && lag > ct.maxLag {
				ct.maxLag = lag
			}
		}
		mu.Unlock()
	}
}
