package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pierrec/lz4/v4"
	"github.com/spf13/cobra"

	"github.com/walweave/walweave/fleet"
	"github.com/walweave/walweave/internal/humanize"
	"github.com/walweave/walweave/mux"
)

const fleetLong = `Backs up several PostgreSQL servers at once, each to its own stream, with one restore point
across them (or, with --independent, each on its own), and restores them all in parallel.`

const fleetBackupLong = `Backs up every node at once, one walweave backup stream per node; {node} in -o and --exec is
replaced by the node's name (--exec also gets WALWEAVE_NODE in its environment and the stream
on its standard input; its exit status counts).

Consistent mode (the default) is all or nothing: the first failure on any node stops every
node within seconds and no destination is finalized (files are removed, commands get SIGTERM).
After every node's data is done, a restore point of one name is written on every node while
the fence holds distributed commits still (--fence advisory:KEY@NODE: walweave holds
pg_advisory_lock(KEY) on NODE, and applications take pg_advisory_xact_lock_shared(KEY) there
around their distributed commit decision; --citus: citus_create_restore_point on the first
node, the coordinator). Each stream carries its node's WAL past the point and recovery
settings: "tar -x" and starting PostgreSQL replays to the restore point and promotes.
The role of each node needs REPLICATION and may run pg_create_restore_point (a superuser, or
GRANT EXECUTE ON FUNCTION pg_create_restore_point(text)).

The walweave backup flags apply to every node; -d, -h and -p are per node: use --node.`

const fleetBackupExample = `  walweave fleet backup --node a='host=db1 user=backup' --node b='host=db2 user=backup' \
      --fence advisory:4242@a -c fast -o '/backups/{node}.tar'
  walweave fleet backup --nodes nodes.txt --exec 'zstd | aws s3 cp - s3://bucket/{node}.tar.zst'`

const fleetRestoreLong = `Restores every node at once, each stream checked while it is written (as walweave restore
does). A consistent fleet backup's streams carry their recovery settings: start each data
directory and it recovers to the fleet's restore point and promotes. The first failure stops
every node; what was written is removed.`

const fleetRestoreExample = `  walweave fleet restore --node a --node b --from '/backups/{node}.tar' -D '/srv/{node}/data'`

func newFleetCmd(a *app) *cobra.Command {
	return newGroupCmd(a, "fleet", "back up or restore several servers at once, with one restore point", fleetLong,
		newFleetBackupCmd(a), newFleetRestoreCmd(a))
}

// nodeFlag collects repeated --node NAME=CONNINFO (or just NAME for restore).
type nodeFlag struct {
	names []string
	conns map[string]string
}

func (n *nodeFlag) String() string { return strings.Join(n.names, ",") }

func (n *nodeFlag) Type() string { return "NAME=CONNINFO" }

func (n *nodeFlag) Set(v string) error {
	name, conn, _ := strings.Cut(v, "=")
	name = strings.TrimSpace(name)
	if name == "" {
		return fmt.Errorf("invalid --node %q: want NAME=CONNINFO", v)
	}
	if n.conns == nil {
		n.conns = map[string]string{}
	}
	if _, dup := n.conns[name]; dup {
		return fmt.Errorf("node %q given twice", name)
	}
	n.names = append(n.names, name)
	n.conns[name] = strings.TrimSpace(conn)
	return nil
}

// readNodesFile adds the nodes of FILE: one "NAME CONNINFO" a line, # comments.
func (n *nodeFlag) readFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		name, conn, _ := strings.Cut(s, " ")
		if err := n.Set(name + "=" + strings.TrimSpace(conn)); err != nil {
			return fmt.Errorf("%s:%d: %w", path, line, err)
		}
	}
	return sc.Err()
}

// fleetBackupFlags are walweave fleet backup's own flags.
type fleetBackupFlags struct {
	nodes        nodeFlag
	nodesFile    string
	only         string
	exec         string
	independent  bool
	fence        string
	citus        bool
	restorePoint string
	report       string
	maxRateTotal string
	memBudget    string
	fenceTimeout time.Duration
}

func newFleetBackupCmd(a *app) *cobra.Command {
	var bf backupFlags
	var f fleetBackupFlags
	cmd := &cobra.Command{
		Use:     "backup --node NAME=CONNINFO ... (-o 'DIR/{node}.tar' | --exec 'CMD') [flags]",
		Short:   "back up every node at once, one stream each, with one restore point",
		Long:    fleetBackupLong,
		Example: fleetBackupExample,
		Args:    a.maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			bf.compressSet = cmd.Flags().Changed("compress")
			return a.exit(runFleetBackup(a.ctx, &bf, &f, fleetArgs(a.args, "backup"), a.stdout, a.stderr))
		},
	}
	fs := cmd.Flags()
	bf.register(fs)
	fs.Var(&f.nodes, "node", "a node: NAME=CONNINFO (repeatable)")
	fs.StringVar(&f.nodesFile, "nodes", "", "read the nodes from `FILE`: one \"NAME CONNINFO\" a line")
	fs.StringVar(&f.only, "only", "", "back up only these `NODES` (comma-separated names), e.g. to rerun the failed ones")
	fs.StringVar(&f.exec, "exec", "", "run `CMD` (sh -c) per node with the stream on stdin instead of -o; {node} is replaced")
	fs.BoolVar(&f.independent, "independent", false, "back up each node on its own: no restore point, a failure does not stop the others")
	fs.StringVar(&f.fence, "fence", "", "hold distributed commits still for the restore point: `advisory:KEY@NODE`")
	fs.DurationVar(&f.fenceTimeout, "fence-timeout", time.Minute, "give up when the fence is not granted within this time (distributed commits in flight hold it)")
	fs.BoolVar(&f.citus, "citus", false, "Citus: write the restore point with citus_create_restore_point on the first node (the coordinator)")
	fs.StringVar(&f.restorePoint, "restore-point", "", "the restore point's `NAME` (default walweave-fleet-<UTC time>)")
	fs.StringVar(&f.report, "report", "", "write the report as JSON to `FILE`")
	fs.StringVar(&f.maxRateTotal, "max-rate-total", "", "total send `RATE` over all nodes, split evenly (same units as --max-rate, which is per node)")
	fs.StringVar(&f.memBudget, "memory-budget", "", "bound the WAL queued in all nodes' rings together to `SIZE`, e.g. 512M or 2G (default: only --ring-slots per node)")
	return cmd
}

// fleetArgs is the command line after "fleet SUB" (the words cobra found the command by).
func fleetArgs(args []string, sub string) []string {
	out := append([]string(nil), args...)
	for _, w := range []string{"fleet", sub} {
		for i, a := range out {
			if a == w {
				out = append(out[:i:i], out[i+1:]...)
				break
			}
		}
	}
	return out
}

func runFleetBackup(ctx context.Context, bf *backupFlags, f *fleetBackupFlags, args []string, stdout, stderr io.Writer) int {
	usage := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "walweave fleet backup: "+format+"\n", a...)
		return exitUsage
	}
	if bf.dbname != "" || bf.host != "" || bf.port != "" {
		return usage("-d, -h and -p are per node: give each node's connection string with --node NAME=CONNINFO")
	}
	if f.nodesFile != "" {
		if err := f.nodes.readFile(f.nodesFile); err != nil {
			return usage("--nodes: %v", err)
		}
	}
	if len(f.nodes.names) == 0 {
		return usage("no nodes: give --node NAME=CONNINFO (repeatable) or --nodes FILE")
	}
	names := f.nodes.names
	if f.only != "" {
		var sel []string
		for _, n := range strings.Split(f.only, ",") {
			n = strings.TrimSpace(n)
			if _, ok := f.nodes.conns[n]; !ok {
				return usage("--only: no node %q", n)
			}
			sel = append(sel, n)
		}
		names = sel
		if !f.independent {
			return usage("--only needs --independent: a consistent fleet backup writes one restore point on every node at one moment, and a node backed up again on its own could not reach the others' point; rerun the whole fleet, or back up independent nodes with --independent --only %s", f.only)
		}
	}
	if (bf.output == "") == (f.exec == "") {
		return usage("give exactly one of -o 'DIR/{node}.tar' and --exec 'CMD'")
	}
	if bf.output != "" && len(names) > 1 && !strings.Contains(bf.output, "{node}") {
		return usage("-o %q: the path must contain {node}, one file per node", bf.output)
	}
	if f.citus && f.fence != "" {
		return usage("--citus and --fence exclude each other")
	}
	if f.independent && (f.citus || f.fence != "" || f.restorePoint != "") {
		return usage("--independent writes no restore point: --fence, --citus and --restore-point do not apply")
	}
	cfg, err := bf.config()
	if err != nil {
		return usage("%v", err)
	}
	opts := fleet.Options{Config: cfg, Independent: f.independent, RestorePoint: f.restorePoint, FenceTimeout: f.fenceTimeout}
	if f.fence != "" {
		if opts.Fence, err = fleet.ParseFence(f.fence); err != nil {
			return usage("%v", err)
		}
	}
	if f.fence != "" && !slices.Contains(names, opts.Fence.Node) {
		return usage("--fence %s: no node %q in the fleet (nodes: %s)", f.fence, opts.Fence.Node, strings.Join(names, ", "))
	}
	if f.citus {
		opts.Fence = fleet.Fence{Kind: fleet.FenceCitus, Node: names[0]}
	}
	if opts.MaxRateTotal, err = parseRate(f.maxRateTotal); err != nil {
		return usage("--max-rate-total: %v", err)
	}
	if f.memBudget != "" {
		if opts.MemoryBudget, err = parseSize(f.memBudget); err != nil {
			return usage("--memory-budget: %v", err)
		}
	}
	compress, err := parseCompress(bf.compress)
	if err != nil {
		return usage("%v", err)
	}
	if f.exec == "" {
		compress = suffixCompression(bf.output, bf.compressSet, compress, "walweave fleet backup", stderr)
	}
	level := slog.LevelWarn
	if bf.verbose {
		level = slog.LevelDebug
	}
	opts.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	var view *fleetProgress
	if bf.progress {
		view = newFleetProgress(stderr, isTerminal(stderr), names)
		opts.Progress = view.update
	}

	var secrets []string
	var nodes []fleet.Node
	for _, name := range names {
		conn, err := connString(f.nodes.conns[name], "", "", bf.user)
		if err != nil {
			return usage("node %s: %v", name, err)
		}
		pc, err := pgconn.ParseConfig(conn)
		if err != nil {
			return usage("node %s: connection string: %v", name, err)
		}
		secrets = append(secrets, pc.Password)
		var dest func(context.Context) (fleet.Destination, error)
		if f.exec != "" {
			dest = fleet.Command(strings.ReplaceAll(f.exec, "{node}", name), name, stdout, stderr)
		} else {
			path := strings.ReplaceAll(bf.output, "{node}", name)
			if dir := filepath.Dir(path); dir != "" {
				if st, err := os.Stat(dir); err != nil || !st.IsDir() {
					return usage("-o %q: directory %s does not exist", bf.output, dir)
				}
			}
			if !bf.force {
				if err := refuseExisting("-o", path); err != nil {
					return usage("%v", err)
				}
			}
			dest = fleet.File(path)
		}
		if compress >= 0 {
			dest = lz4Dest(dest, compress)
		}
		nodes = append(nodes, fleet.Node{Name: name, ConnString: conn, Dest: dest})
	}

	rep, err := fleet.Backup(ctx, nodes, opts)
	if view != nil {
		view.finish()
	}
	redact := func(s string) string {
		for _, p := range secrets {
			if p != "" {
				s = strings.ReplaceAll(s, p, "********")
			}
		}
		return s
	}
	for i := range rep.Nodes {
		rep.Nodes[i].Error = redact(rep.Nodes[i].Error)
	}
	rep.Error = redact(rep.Error)
	printFleetTable(stderr, rep)
	if f.report != "" {
		js, _ := json.MarshalIndent(rep, "", "  ")
		if werr := os.WriteFile(f.report, append(js, '\n'), 0o644); werr != nil {
			fmt.Fprintf(stderr, "walweave fleet backup: write the report: %v\n", werr)
			if err == nil {
				return exitFailure
			}
		}
	}
	if err == nil {
		if !f.independent {
			fmt.Fprintf(stderr, "walweave: fleet backup complete: %s, restore point %q (spread %v between the nodes)\n",
				plural(len(nodes), "node"), rep.RestorePoint, time.Duration(rep.RestorePointSpread).Round(time.Microsecond))
		} else {
			fmt.Fprintf(stderr, "walweave: fleet backup complete: %s, independent\n", plural(len(nodes), "node"))
		}
		return exitOK
	}
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		fmt.Fprintln(stderr, "walweave: fleet backup interrupted; nothing was kept")
		return exitInterrupted
	}
	fmt.Fprintf(stderr, "walweave: fleet backup failed: %s\n", oneLine(redact(err.Error())))
	failed := rep.Failed()
	pwNote := ""
	if redact(strings.Join(args, " ")) != strings.Join(args, " ") {
		pwNote = "walweave: (passwords are shown as ********: put them back, or use ~/.pgpass or PGPASSWORD)\n"
	}
	if f.independent {
		var ok []string
		for _, n := range rep.Nodes {
			if n.State == fleet.StateDone {
				ok = append(ok, n.Name)
			}
		}
		if len(ok) > 0 {
			fmt.Fprintf(stderr, "walweave: kept the backups of %s (independent mode: each node stands alone)\n", strings.Join(ok, ", "))
		}
		fmt.Fprintf(stderr, "walweave: to back up only the failed nodes (%s) again, run:\n  %s\n%s", strings.Join(failed, ", "), redact(rerunCommand(args, failed)), pwNote)
	} else {
		fmt.Fprintf(stderr, "walweave: nothing was kept. A consistent fleet backup is all or nothing: its restore point is written on every node at one moment, under one fence, after every node's data, and a node backed up again later could not reach that moment, so the whole fleet must run again:\n  %s\n%s", redact(rerunCommand(args, nil)), pwNote)
	}
	return exitFailure
}

// rerunCommand is the command line that reruns args, with --only set to only (nil: all).
// A rerun of some nodes (--only) writes its --report to a new name (FILE.rerun.json), so that
// the failed run's report is kept.
func rerunCommand(args []string, only []string) string {
	var out []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if only != nil && (a == "--report" && i+1 < len(args) || strings.HasPrefix(a, "--report=")) {
			v, ok := strings.CutPrefix(a, "--report=")
			if !ok {
				i++
				v = args[i]
			}
			out = append(out, "--report", shellQuote(rerunReportName(v)))
			continue
		}
		if a == "--only" || a == "-only" {
			i++
			continue
		}
		if strings.HasPrefix(a, "--only=") || strings.HasPrefix(a, "-only=") {
			continue
		}
		out = append(out, shellQuote(a))
	}
	if only != nil {
		out = append(out, "--only", shellQuote(strings.Join(only, ",")))
	}
	return "walweave fleet backup " + strings.Join(out, " ")
}

// rerunReportName is the report file of a rerun: report.json -> report.rerun.json.
func rerunReportName(p string) string {
	ext := filepath.Ext(p)
	return strings.TrimSuffix(p, ext) + ".rerun" + ext
}

func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,@%+", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// parseSize reads 512M, 2G, 100k or bytes.
func parseSize(s string) (int64, error) {
	mult := int64(1)
	num := s
	switch {
	case strings.HasSuffix(s, "k"), strings.HasSuffix(s, "K"):
		num, mult = s[:len(s)-1], 1<<10
	case strings.HasSuffix(s, "M"):
		num, mult = s[:len(s)-1], 1<<20
	case strings.HasSuffix(s, "G"):
		num, mult = s[:len(s)-1], 1<<30
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("invalid size %q: a positive number with k, M or G", s)
	}
	return n * mult, nil
}

// lz4Dest compresses a destination's stream (--compress).
func lz4Dest(open func(context.Context) (fleet.Destination, error), level int) func(context.Context) (fleet.Destination, error) {
	return func(ctx context.Context) (fleet.Destination, error) {
		d, err := open(ctx)
		if err != nil {
			return nil, err
		}
		zw := lz4.NewWriter(d)
		opts := []lz4.Option{lz4.ConcurrencyOption(runtime.GOMAXPROCS(0)), lz4.BlockSizeOption(lz4.Block4Mb)}
		if level > 0 {
			opts = append(opts, lz4.CompressionLevelOption(lz4.CompressionLevel(1<<(8+level))))
		}
		if err := zw.Apply(opts...); err != nil {
			d.Abort(err)
			return nil, err
		}
		return &lz4Destination{Destination: d, zw: zw}, nil
	}
}

type lz4Destination struct {
	fleet.Destination
	zw *lz4.Writer
}

func (d *lz4Destination) Write(p []byte) (int, error) { return d.zw.Write(p) }

func (d *lz4Destination) Close() error {
	if err := d.zw.Close(); err != nil {
		d.Destination.Abort(err)
		return fmt.Errorf("finish lz4 frame: %w", err)
	}
	return d.Destination.Close()
}

// printFleetTable writes the per-node report as a table.
func printFleetTable(w io.Writer, rep fleet.Report) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tSTATE\tWRITTEN\tTIME\tSTART LSN\tEND LSN\tRESTORE POINT LSN\tERROR")
	for _, n := range rep.Nodes {
		errText := n.Error
		if len(errText) > 120 {
			errText = errText[:117] + "..."
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\t%s\t%s\t%s\n", n.Name, n.State, humanize.Bytes(n.Bytes),
			time.Duration(n.Duration).Round(10*time.Millisecond), dash(n.StartLSN), dash(n.EndLSN), dash(n.RestorePointLSN), oneLine(errText))
	}
	tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// fleetProgress shows every node's progress in one view: one live line on a terminal, a
// line every plainEvery otherwise.
type fleetProgress struct {
	mu    sync.Mutex
	w     io.Writer
	tty   bool
	names []string
	last  map[string]mux.Progress
	shown time.Time
	drew  bool
}

func newFleetProgress(w io.Writer, tty bool, names []string) *fleetProgress {
	return &fleetProgress{w: w, tty: tty, names: names, last: map[string]mux.Progress{}}
}

func (p *fleetProgress) update(node string, pr mux.Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.last[node] = pr
	every := time.Second
	if !p.tty {
		every = plainEvery
	}
	if time.Since(p.shown) < every {
		return
	}
	p.shown = time.Now()
	p.draw()
}

func (p *fleetProgress) draw() {
	var parts []string
	for _, n := range p.names {
		pr, ok := p.last[n]
		switch {
		case !ok:
			parts = append(parts, n+": -")
		case pr.Phase == mux.PhaseStreaming && pr.TotalBytes > 0:
			parts = append(parts, fmt.Sprintf("%s: %d%% %s", n, pr.BytesDone*100/pr.TotalBytes, humanize.Bytes(pr.BytesWritten)))
		default:
			parts = append(parts, fmt.Sprintf("%s: %s %s", n, pr.Phase, humanize.Bytes(pr.BytesWritten)))
		}
	}
	line := strings.Join(parts, " | ")
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", line)
		p.drew = true
	} else {
		fmt.Fprintln(p.w, "walweave:", line)
	}
}

func (p *fleetProgress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.last) > 0 {
		p.draw()
	}
	if p.tty && p.drew {
		fmt.Fprintln(p.w)
	}
}

// fleetRestoreFlags are walweave fleet restore's flags.
type fleetRestoreFlags struct {
	nodes                                      nodeFlag
	nodesFile, from, fromExec, dirTmpl, report string
	progress, verbose, independent             bool
	owner                                      string
	opts                                       fleet.RestoreOptions
}

func newFleetRestoreCmd(a *app) *cobra.Command {
	var f fleetRestoreFlags
	cmd := &cobra.Command{
		Use:     "restore --node NAME ... (--from 'DIR/{node}.tar' | --from-exec 'CMD') -D 'ROOT/{node}' [flags]",
		Short:   "restore every node at once, each stream checked while it is written",
		Long:    fleetRestoreLong,
		Example: fleetRestoreExample,
		Args:    a.maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.exit(runFleetRestore(a.ctx, &f, a.stdout, a.stderr))
		},
	}
	fs := cmd.Flags()
	fs.Var(&f.nodes, "node", "a node's name (repeatable; NAME=CONNINFO is accepted, the connection string ignored)")
	fs.StringVar(&f.nodesFile, "nodes", "", "read the node names from `FILE` (the fleet backup's nodes file)")
	fs.StringVar(&f.from, "from", "", "each node's stream `FILE`, with {node}, e.g. '/backups/{node}.tar'")
	fs.StringVar(&f.fromExec, "from-exec", "", "run `CMD` (sh -c) per node and read its stream from its stdout; {node} is replaced")
	fs.StringVarP(&f.dirTmpl, "pgdata", "D", "", "each node's data directory `DIR`, with {node}, e.g. '/srv/{node}/data' (must be absent or empty)")
	fs.BoolVar(&f.opts.Restore.NoSync, "no-sync", false, "do not fsync (faster, not crash-safe)")
	fs.BoolVar(&f.opts.Restore.NoClean, "no-clean", false, "keep what was written when a restore fails")
	fs.IntVar(&f.opts.Restore.Workers, "workers", 4, "`N` goroutines writing files, per node")
	fs.BoolVarP(&f.progress, "progress", "P", false, "show progress on stderr")
	fs.BoolVarP(&f.verbose, "verbose", "v", false, "log what happens on stderr")
	fs.StringVar(&f.report, "report", "", "write the report as JSON to `FILE`")
	fs.StringVar(&f.owner, "owner", "", "as root: give every node's files to `USER[:GROUP]` (default: the owner of each DIR, else the stream's)")
	fs.BoolVar(&f.independent, "independent", false, "the streams are independent backups: accept nodes that recover to different restore points (or none)")
	return cmd
}

func runFleetRestore(ctx context.Context, f *fleetRestoreFlags, stdout, stderr io.Writer) int {
	nodes, nodesFile, from, fromExec, dirTmpl, report := f.nodes, f.nodesFile, f.from, f.fromExec, f.dirTmpl, f.report
	progress, verbose, opts := f.progress, f.verbose, f.opts
	usage := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "walweave fleet restore: "+format+"\n", a...)
		return exitUsage
	}
	if nodesFile != "" {
		if err := nodes.readFile(nodesFile); err != nil {
			return usage("--nodes: %v", err)
		}
	}
	if len(nodes.names) == 0 {
		return usage("no nodes: give --node NAME (repeatable) or --nodes FILE")
	}
	if (from == "") == (fromExec == "") {
		return usage("give exactly one of --from 'DIR/{node}.tar' and --from-exec 'CMD'")
	}
	if !strings.Contains(dirTmpl, "{node}") && len(nodes.names) > 1 {
		return usage("-D %q: the path must contain {node}, one directory per node", dirTmpl)
	}
	if from != "" && !strings.Contains(from, "{node}") && len(nodes.names) > 1 {
		return usage("--from %q: the path must contain {node}", from)
	}
	if dirTmpl == "" {
		return usage("-D 'ROOT/{node}' is required: each node's data directory")
	}
	if f.owner != "" {
		o, _, err := parseOwnerFlag(f.owner)
		if err != nil {
			return usage("%v", err)
		}
		opts.Restore.Owner = o
	}
	opts.AutoOwner = true
	opts.Restore.Logger = debugLogger(stderr, verbose)
	var rnodes []fleet.RestoreNode
	for _, name := range nodes.names {
		rn := fleet.RestoreNode{Name: name, Dir: strings.ReplaceAll(dirTmpl, "{node}", name)}
		if from != "" {
			path := strings.ReplaceAll(from, "{node}", name)
			rn.Open = func(context.Context) (io.ReadCloser, error) { return os.Open(path) }
		} else {
			rn.Open = fleet.OpenCommand(strings.ReplaceAll(fromExec, "{node}", name), name, stderr)
		}
		rnodes = append(rnodes, rn)
	}
	var mu sync.Mutex
	read := map[string]int64{}
	if progress {
		tty := isTerminal(stderr)
		last := time.Time{}
		opts.Progress = func(node string, n int64) {
			mu.Lock()
			defer mu.Unlock()
			read[node] = n
			every := time.Second
			if !tty {
				every = plainEvery
			}
			if time.Since(last) < every {
				return
			}
			last = time.Now()
			var parts []string
			for _, nm := range nodes.names {
				parts = append(parts, nm+": "+humanize.Bytes(read[nm]))
			}
			if tty {
				fmt.Fprintf(stderr, "\r\033[Kread %s", strings.Join(parts, " | "))
			} else {
				fmt.Fprintf(stderr, "walweave: read %s\n", strings.Join(parts, " | "))
			}
		}
	}
	rep, err := fleet.Restore(ctx, rnodes, opts)
	if progress && isTerminal(stderr) {
		fmt.Fprintln(stderr)
	}
	tw := tabwriter.NewWriter(stderr, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tSTATE\tREAD\tTIME\tDIRECTORY\tRESTORE POINT\tERROR")
	points := map[string]bool{}
	for _, n := range rep.Nodes {
		point := "-"
		if n.State == fleet.StateDone {
			if p := recoveryTargetName(n.Dir); p != "" {
				point = p
			}
			points[point] = true
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\t%s\t%s\n", n.Name, n.State, humanize.Bytes(n.Bytes), time.Duration(n.Duration).Round(10*time.Millisecond), n.Dir, point, oneLine(n.Error))
	}
	tw.Flush()
	if report != "" {
		js, _ := json.MarshalIndent(rep, "", "  ")
		if werr := os.WriteFile(report, append(js, '\n'), 0o644); werr != nil {
			fmt.Fprintf(stderr, "walweave fleet restore: write the report: %v\n", werr)
		}
	}
	if err != nil {
		return fail(ctx, stderr, "fleet restore", err)
	}
	if len(points) > 1 {
		var ps []string
		for p := range points {
			ps = append(ps, p)
		}
		sort.Strings(ps)
		if !f.independent {
			kept := "removed what it wrote"
			if opts.Restore.NoClean {
				kept = "kept what it wrote (--no-clean)"
			} else {
				for _, n := range rep.Nodes {
					removeContents(n.Dir)
				}
			}
			fmt.Fprintf(stderr, "walweave: fleet restore failed: the nodes recover to different restore points (%s): these streams are not one fleet backup, and started together they would not fit; %s. Restore the streams of one fleet backup, or pass --independent if each node is meant to recover on its own\n", strings.Join(ps, ", "), kept)
			return exitFailure
		}
		fmt.Fprintf(stderr, "walweave: the nodes recover to different restore points (%s): independent, as --independent says\n", strings.Join(ps, ", "))
	}
	for _, n := range rep.Nodes {
		switch {
		case n.Owner != "":
			fmt.Fprintf(stderr, "walweave fleet restore: %s: files owned by %s (--owner USER[:GROUP] to choose)\n", n.Name, n.Owner)
		case os.Geteuid() == 0:
			fmt.Fprintf(stderr, "walweave fleet restore: %s: files left owned by root (neither %s nor the stream names another owner); PostgreSQL will not start on them as another user: chown -R, or restore with --owner postgres\n", n.Name, n.Dir)
		}
	}
	if points["-"] && len(points) == 1 {
		fmt.Fprintf(stderr, "walweave: fleet restore complete: %s (no restore point in the streams: independent backups, each recovers to its own end)\n", plural(len(rep.Nodes), "node"))
	} else {
		fmt.Fprintf(stderr, "walweave: fleet restore complete: %s; start each (pg_ctl -D DIR start): it recovers to the restore point and promotes\n", plural(len(rep.Nodes), "node"))
	}
	return exitOK
}

// removeContents empties dir (a failed restore's target: it was absent or empty before).
func removeContents(dir string) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		os.RemoveAll(filepath.Join(dir, e.Name()))
	}
}

// recoveryTargetName reads recovery_target_name from a restored postgresql.auto.conf (the
// last setting wins, as in PostgreSQL).
func recoveryTargetName(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "postgresql.auto.conf"))
	if err != nil {
		return ""
	}
	name := ""
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if ok && strings.TrimSpace(k) == "recovery_target_name" {
			v = strings.TrimSpace(v)
			name = strings.ReplaceAll(strings.Trim(v, "'"), "''", "'")
		}
	}
	return name
}
