package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// set is a series of rounds under one condition (idle or loaded).
type set struct {
	name    string
	loaded  bool
	clients int
	keys    []string
	rounds  []round
	// loadTPS and walRate (bytes/s) describe the load during the measured rounds.
	loadTPS, walRate float64
	loadSeconds      float64
	link             bool // the backups went through the capped link
}

// round holds one run of every contender, in order.
type round struct {
	dbSize  int64 // sum of pg_database_size when the round started
	samples map[string]sample
}

// runBench runs the idle and/or loaded sets and writes the report.
func runBench(ctx context.Context, cfg *config, srv *server) error {
	if err := becomeSubreaper(); err != nil {
		return err
	}
	e := &env{srv: srv, tmpDir: cfg.tmpDir, timeout: cfg.timeout}
	if usesWalweave(cfg.only) {
		bin, cleanup, err := walweaveBinary(ctx, cfg.walweave)
		if err != nil {
			return err
		}
		defer cleanup()
		e.walweave = bin
		if cfg.baseline != "" {
			if e.baseline, err = filepath.Abs(cfg.baseline); err != nil {
				return err
			}
		}
	}
	m := describeMachine(ctx, srv, cfg)
	var sets []*set
	if !cfg.skipIdle {
		name := "idle"
		if srv.link != "" {
			name = "idle, capped link"
		}
		sets = append(sets, &set{name: name, keys: cfg.only, link: srv.link != ""})
	}
	if cfg.load {
		sets = append(sets, &set{name: fmt.Sprintf("under load (pgbench, %d clients)", cfg.clients),
			loaded: true, clients: cfg.clients, keys: cfg.only})
	}
	for _, s := range sets {
		if err := s.run(ctx, cfg, e); err != nil {
			return err
		}
	}
	m.loadAfter = readLoadAvg()
	report := renderReport(m, sets)
	fmt.Print(report)
	if cfg.out != "" {
		if err := writeFileAtomic(cfg.out, []byte(report)); err != nil {
			return err
		}
		logf("report written to %s", cfg.out)
	}
	return nil
}

// run runs the warm-up rounds and the measured rounds of a set.
func (s *set) run(ctx context.Context, cfg *config, e *env) error {
	total := cfg.warmup + cfg.runs
	for i := 0; i < total; i++ {
		warm := i < cfg.warmup
		label := fmt.Sprintf("%s round %d/%d", s.name, i-cfg.warmup+1, cfg.runs)
		if warm {
			label = fmt.Sprintf("%s warm-up %d/%d", s.name, i+1, cfg.warmup)
		}
		r, err := s.runRound(ctx, cfg, e, label, warm, i)
		if err != nil {
			return err
		}
		if !warm {
			s.rounds = append(s.rounds, r)
		}
	}
	return nil
}

// runRound runs every contender once, with the load around the round when the set is loaded.
// Round i starts i places further down the list (A B C D, B C D A, C D A B, ...), so that no
// contender always runs first after the load starts or right after another's disk writes.
func (s *set) runRound(ctx context.Context, cfg *config, e *env, label string, warm bool, i int) (round, error) {
	r := round{samples: map[string]sample{}}
	var err error
	if r.dbSize, err = e.srv.databaseSize(ctx); err != nil {
		return r, err
	}
	var l *load
	var before counters
	if s.loaded {
		if l, err = startLoad(ctx, e.srv, s.clients); err != nil {
			return r, err
		}
		defer func() { _ = l.stop() }()
		if err := sleep(ctx, cfg.loadRampUp); err != nil {
			return r, err
		}
		if before, err = e.srv.sample(ctx); err != nil {
			return r, err
		}
	}
	for j := range s.keys {
		key := s.keys[(i+j)%len(s.keys)]
		if ctx.Err() != nil {
			return r, ctx.Err()
		}
		smp := find(key).run(ctx, e)
		r.samples[key] = smp
		logSample(label, key, smp, r.dbSize)
	}
	if s.loaded {
		return r, s.finishLoad(ctx, e.srv, l, before, warm)
	}
	return r, nil
}

// finishLoad stops the load and adds the round's commits and WAL to the set's totals.
func (s *set) finishLoad(ctx context.Context, srv *server, l *load, before counters, warm bool) error {
	after, err := srv.sample(ctx)
	if err != nil {
		return err
	}
	if err := l.stop(); err != nil {
		return err
	}
	if warm {
		return nil
	}
	secs := after.at.Sub(before.at).Seconds()
	n := s.loadSeconds
	s.loadTPS = (s.loadTPS*n + float64(after.commits-before.commits)) / (n + secs)
	s.walRate = (s.walRate*n + float64(after.walLSN-before.walLSN)) / (n + secs)
	s.loadSeconds = n + secs
	return nil
}

// logSample prints one run's result on stderr.
func logSample(label, key string, s sample, dbSize int64) {
	if s.err != nil {
		logf("%s  %-5s FAILED: %v", label, key, s.err)
		return
	}
	logf("%s  %-5s %7.2fs  %6.0f MiB/s  cpu %6.2fs  rss %5.1f MiB", label, key, s.wall.Seconds(),
		float64(dbSize)/(1<<20)/s.wall.Seconds(), s.cpu.Seconds(), float64(s.maxRSS)/1024)
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// walweaveBinary returns the walweave binary to run: the given path, or one built once from
// ./cmd/walweave of this module into a temp dir (removed by cleanup), as users build it.
func walweaveBinary(ctx context.Context, path string) (string, func(), error) {
	if path != "" {
		abs, err := filepath.Abs(path)
		return abs, func() {}, err
	}
	root, err := moduleRoot(ctx)
	if err != nil {
		return "", nil, err
	}
	dir, err := os.MkdirTemp("", "walweave-bench-bin-")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	bin := filepath.Join(dir, "walweave")
	logf("go build -o %s ./cmd/walweave", bin)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/walweave")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		cleanup()
		return "", nil, fmt.Errorf("go build ./cmd/walweave: %w\n%s", err, out)
	}
	return bin, cleanup, nil
}

// moduleRoot is the directory of this module's go.mod.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("not inside the walweave module: run from its root or pass -walweave")
	}
	return filepath.Dir(gomod), nil
}

// writeFileAtomic writes data to path through a temporary file and a rename.
func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
