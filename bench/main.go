// Command bench measures walweave against pg_basebackup, side by side, in one run.
//
// It starts a scratch PostgreSQL cluster with internal/pgtest (or uses -d DSN), loads pgbench
// data at the given scale, runs a CHECKPOINT, then runs the contenders in alternating rounds
// (A B C D A-lz4 A-srvlz4, A B C D ..., ...) after one warm-up round:
//
//	A         walweave backup -c fast > /dev/null
//	B         pg_basebackup -Ft -X fetch -c fast -D - > /dev/null
//	C         pg_basebackup -Ft -X stream -c fast -D tmpdir
//	D         pg_basebackup --target=blackhole -X none -c fast   (the server's own limit)
//	A-lz4     walweave backup -c fast --compress lz4 > /dev/null
//	A-srvlz4  walweave backup -c fast --server-compress lz4 > /dev/null
//	A-srvzstd walweave backup -c fast --server-compress zstd:level=3,workers=2 > /dev/null
//	A-jN      walweave backup -c fast --jobs N > /dev/null   (N = 2, 4, 8: files over SQL)
//
// -link-rate and -link-latency put an in-process Toxiproxy between the backups and the server
// that caps each TCP connection (link.go): a network that limits flows.
//
// For each it reports the median, minimum and maximum wall time, throughput (of the database
// size), client CPU seconds (user+sys of the child, from its rusage) and peak RSS, and the
// ratios A/B, A/C, A/D computed round by round. With -load the same rounds run again under a
// pgbench write load. The result is a Markdown table on stdout, and in -out FILE.
//
// With -profile FILE it instead runs mux.Backup in this process under a CPU profile.
//
//	go run ./bench -scale 100 -runs 5 -out bench/results.md
//	go run ./bench -scale 20 -load -skip-idle
//	go run ./bench -scale 100 -profile cpu.pprof -memprofile mem.pprof
//	go run ./bench -scale 20 -runs 3 -link-rate 40000 -only A,A-j2,A-j4,A-j8,A-srvlz4,A-srvzstd,B
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// config holds the command-line flags.
type config struct {
	scale       int
	runs        int
	warmup      int
	only        []string
	dsn         string
	sqlDSN      string
	pgbin       string
	pg          string
	init        bool
	load        bool
	skipIdle    bool
	clients     int
	loadRampUp  time.Duration
	walweave    string
	baseline    string
	out         string
	tmpDir      string
	timeout     time.Duration
	profile     string
	memProfile  string
	profileRuns int
	profileJobs int
	fleet       bool
	fleetRows   int
	// profileChunks, profileWindow, profileDepth: sqlfetch settings compared in profile mode
	profileChunks []fetchVariant
	profileWindow int
	profileDepth  int
	verbose       bool
	linkRate      int
	linkLatency   time.Duration
}

func parseFlags(args []string) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: go run ./bench [flags]\n\nwalweave against pg_basebackup, side by side. Flags:\n")
		fs.PrintDefaults()
	}
	only := fs.String("only", "A,B,C,D,A-lz4,A-srvlz4", "comma-separated contenders to run (A, B, C, D, A-lz4, A-srvlz4, A-srvzstd, A-j2, A-j4, A-j8)")
	fs.IntVar(&c.scale, "scale", 100, "pgbench scale factor (100 is about 1.5 GB)")
	fs.IntVar(&c.runs, "runs", 5, "measured rounds (each runs every contender once)")
	fs.IntVar(&c.warmup, "warmup", 1, "unmeasured warm-up rounds before the measured ones")
	fs.StringVar(&c.dsn, "d", "", "use this server instead of a scratch cluster: DSN of a role with REPLICATION")
	fs.StringVar(&c.sqlDSN, "sql-dsn", "", "with -d: DSN for pgbench, CHECKPOINT and size queries (default: -d)")
	fs.StringVar(&c.pgbin, "pgbin", "", "directory of pg_basebackup and pgbench (default: the installed client programs, Debian's 15)")
	fs.StringVar(&c.pg, "pg", "", "scratch cluster's server: 15 (default), 16, 17, 18 or a bin directory, as WALWEAVE_PG for the tests (16-18 from scripts/setup-pg-matrix.sh)")
	fs.BoolVar(&c.init, "init", true, "run pgbench -i at -scale first (with -d: drops and recreates the pgbench tables)")
	fs.BoolVar(&c.load, "load", false, "also run the rounds under a pgbench write load")
	fs.BoolVar(&c.skipIdle, "skip-idle", false, "with -load: run only the loaded rounds")
	fs.IntVar(&c.clients, "clients", 4, "pgbench clients of the write load")
	fs.DurationVar(&c.loadRampUp, "load-ramp-up", 3*time.Second, "how long the load runs before a round starts")
	fs.StringVar(&c.walweave, "walweave", "", "walweave binary to run (default: go build ./cmd/walweave into a temp dir)")
	fs.StringVar(&c.baseline, "baseline", "", "an older walweave binary: every walweave contender X also runs with it, as X@base, in the same rounds (side by side with the current build)")
	fs.StringVar(&c.out, "out", "", "also write the Markdown report to this file")
	fs.StringVar(&c.tmpDir, "tmpdir", "", "where contender C writes its backup (default: the system temp dir)")
	fs.DurationVar(&c.timeout, "timeout", 30*time.Minute, "limit for one backup run")
	fs.StringVar(&c.profile, "profile", "", "profile mode: run mux.Backup in-process and write a CPU profile here")
	fs.StringVar(&c.memProfile, "memprofile", "", "profile mode: also write an allocation profile here")
	fs.BoolVar(&c.verbose, "v", false, "profile mode: log what mux.Backup does (debug level) on stderr")
	fs.IntVar(&c.linkRate, "link-rate", 0, "cap every TCP connection of the backups at this many kB/s (an in-process Toxiproxy bandwidth toxic per connection; 0 = loopback)")
	fs.DurationVar(&c.linkLatency, "link-latency", 0, "with the link proxy: latency added to the server's replies on every connection")
	fs.IntVar(&c.profileRuns, "profile-runs", 1, "profile mode: profiled backups (after one unprofiled warm-up)")
	fs.BoolVar(&c.fleet, "fleet", false, "fleet mode: a 3-node fleet backup against the slowest node alone, rate-limited and unlimited, -runs rounds (three scratch clusters; -pg picks their server)")
	fs.IntVar(&c.fleetRows, "fleet-rows", 300000, "fleet mode: rows of the table each node gets (300000 is about 70 MiB)")
	fs.IntVar(&c.profileJobs, "profile-jobs", 0, "profile mode: read the files over SQL on this many connections (--jobs; 0 = BASE_BACKUP)")
	chunks := fs.String("profile-chunks", "", "profile mode: compare --jobs backups with these sqlfetch chunk sizes in KiB, each optionally with a row size (CHUNK/ROW, e.g. 1024,1024/128,256), alternating, -profile-runs rounds")
	fs.IntVar(&c.profileWindow, "profile-window", 0, "profile mode with -profile-chunks: sqlfetch tasks fetched ahead per connection (0: the default)")
	fs.IntVar(&c.profileDepth, "profile-depth", 0, "profile mode with -profile-chunks: queries in flight per connection (0: the default)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	for _, f := range strings.Split(*chunks, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		chunk, row, _ := strings.Cut(f, "/")
		kib, err := strconv.Atoi(chunk)
		if err != nil || kib < 32 || kib%32 != 0 {
			return nil, fmt.Errorf("-profile-chunks: %q is not a multiple of 32 KiB", f)
		}
		v := fetchVariant{chunk: kib << 10, row: -1}
		if row != "" {
			r, err := strconv.Atoi(row)
			if err != nil || r < 1 {
				return nil, fmt.Errorf("-profile-chunks: %q: bad row size", f)
			}
			v.row = r << 10
		}
		c.profileChunks = append(c.profileChunks, v)
	}
	keys, err := parseOnly(*only)
	if err != nil {
		return nil, err
	}
	c.only = keys
	if c.baseline != "" {
		for _, k := range keys {
			if strings.HasPrefix(k, "A") {
				c.only = append(c.only, k+baseSuffix)
			}
		}
	}
	if c.runs < 1 || c.warmup < 0 || c.scale < 1 || c.clients < 1 {
		return nil, errors.New("-runs, -scale and -clients must be at least 1, -warmup at least 0")
	}
	if c.skipIdle && !c.load {
		return nil, errors.New("-skip-idle needs -load")
	}
	if c.sqlDSN == "" {
		c.sqlDSN = c.dsn
	}
	return c, nil
}

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		stop()
		os.Exit(1)
	}
}

// run sets up the server and runs the benchmark or the profile.
func run(ctx context.Context, cfg *config) error {
	if cfg.fleet {
		return runFleet(ctx, cfg)
	}
	srv, err := openServer(ctx, cfg)
	if err != nil {
		return err
	}
	defer srv.close()
	if cfg.init {
		if err := srv.pgbenchInit(ctx, cfg.scale); err != nil {
			return err
		}
	}
	if err := srv.checkpoint(ctx); err != nil {
		logf("warning: %v (continuing)", err)
	}
	if cfg.linkRate > 0 || cfg.linkLatency > 0 {
		stop, err := srv.startLink(cfg.linkRate, cfg.linkLatency)
		if err != nil {
			return err
		}
		defer stop()
	}
	if cfg.profile != "" {
		return runProfile(ctx, cfg, srv)
	}
	return runBench(ctx, cfg, srv)
}

// logf prints a progress line on stderr.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}
