package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/walweave/walweave/mux"
	"github.com/walweave/walweave/pgrepl"
	"github.com/walweave/walweave/ringbuf"
)

// Node is one server of the fleet.
type Node struct {
	// Name names the node in errors, logs, the report and the {node} placeholders.
	Name string
	// ConnString is the node's libpq connection string, as for mux.Config.ConnString (a role
	// with REPLICATION; walweave adds replication=true itself).
	ConnString string
	// SQLConnString is the plain SQL connection the restore point (and an advisory fence held
	// on this node) uses; default: ConnString, with dbname=postgres when it names no database.
	// Its role must be allowed to run pg_create_restore_point (a superuser, or GRANT EXECUTE
	// ON FUNCTION pg_create_restore_point(text)).
	SQLConnString string
	// Dest opens the node's destination when its backup starts (File, Command, or your own).
	Dest func(ctx context.Context) (Destination, error)
}

// FenceKind says how distributed commits are held still while the restore points are written.
type FenceKind string

// The fences.
const (
	// FenceNone writes the restore points with nothing held: each node's point is consistent
	// on its own, not across nodes.
	FenceNone FenceKind = ""
	// FenceAdvisory holds pg_advisory_lock(Key) on Node; applications take
	// pg_advisory_xact_lock_shared(Key) there around their distributed commit decision.
	FenceAdvisory FenceKind = "advisory"
	// FenceCitus calls citus_create_restore_point(name) on the coordinator Node, which blocks
	// distributed commits itself and writes the point on every worker.
	FenceCitus FenceKind = "citus"
)

// Fence is the consistent mode's fence.
type Fence struct {
	Kind FenceKind
	Key  int64  // the advisory lock key (FenceAdvisory)
	Node string // the node holding the lock, or the Citus coordinator
}

// String is the --fence form: "advisory:KEY@NODE", "citus@NODE" or "none".
func (f Fence) String() string {
	switch f.Kind {
	case FenceAdvisory:
		return fmt.Sprintf("advisory:%d@%s", f.Key, f.Node)
	case FenceCitus:
		return "citus@" + f.Node
	}
	return "none"
}

// ParseFence reads "advisory:KEY@NODE", "citus@NODE" or "none".
func ParseFence(s string) (Fence, error) {
	if s == "" || s == "none" {
		return Fence{}, nil
	}
	spec, node, ok := strings.Cut(s, "@")
	if !ok || node == "" {
		return Fence{}, fmt.Errorf("fence %q: want advisory:KEY@NODE or citus@NODE", s)
	}
	if spec == "citus" {
		return Fence{Kind: FenceCitus, Node: node}, nil
	}
	kind, key, ok := strings.Cut(spec, ":")
	if kind != "advisory" || !ok {
		return Fence{}, fmt.Errorf("fence %q: want advisory:KEY@NODE or citus@NODE", s)
	}
	k, err := strconv.ParseInt(key, 10, 64)
	if err != nil {
		return Fence{}, fmt.Errorf("fence %q: the key must be a 64-bit integer", s)
	}
	return Fence{Kind: FenceAdvisory, Key: k, Node: node}, nil
}

// Options configures a fleet backup.
type Options struct {
	// Config is the backup configuration every node uses (checkpoint, rate, compression,
	// manifest checksums, ...); its ConnString, Name, Progress, Budget and Logger are set per
	// node by Backup.
	Config mux.Config
	// Independent backs up every node on its own: no barrier, fence or restore point, and a
	// failure does not cancel the other nodes (each destination is committed when its node
	// is done). The default, consistent mode, is all or nothing with one restore point.
	Independent bool
	// Fence holds distributed commits still while the restore points are written (consistent
	// mode only). FenceNone gives per-node restore points that are written at about the same
	// time but fit together only if no transaction spans nodes.
	Fence Fence
	// RestorePoint is the restore point's name (default: walweave-fleet-<UTC time>); it must be
	// unique in the servers' WAL, since recovery stops at the first point of that name.
	RestorePoint string
	// FenceTimeout bounds the wait for the fence (default 1 minute).
	FenceTimeout time.Duration
	// MemoryBudget bounds the WAL queued in all nodes' rings together, in bytes (0: only each
	// ring's slots bound it). See ringbuf.Budget.
	MemoryBudget int64
	// MaxRateTotal is a total send rate in bytes per second split evenly over the nodes (each
	// at least the server's minimum of 32 kB/s); Config.MaxRate, when set, is per node and
	// MaxRateTotal then lowers it where the share is smaller.
	MaxRateTotal int64
	// Progress, when set, receives every node's progress (from the nodes' goroutines: it must
	// be safe for concurrent use).
	Progress func(node string, p mux.Progress)
	// Logger receives the fleet's and the nodes' logs (each with node=NAME).
	Logger *slog.Logger
}

// State is where a node's backup ended.
type State string

// The states of a node.
const (
	StatePending   State = "pending"   // not started
	StateRunning   State = "running"   // in progress
	StateDone      State = "done"      // complete and committed
	StateFailed    State = "failed"    // this node's failure
	StateCancelled State = "cancelled" // stopped because another node failed (consistent mode)
)

// NodeReport is one node's part of the Report.
type NodeReport struct {
	Name            string     `json:"name"`
	State           State      `json:"state"`
	Phase           mux.Phase  `json:"phase,omitempty"` // the phase a failure happened in
	Bytes           int64      `json:"bytes"`
	Duration        Seconds    `json:"duration_seconds"`
	StartLSN        string     `json:"start_lsn,omitempty"`
	EndLSN          string     `json:"end_lsn,omitempty"`
	Timeline        uint32     `json:"timeline,omitempty"`
	WALSegments     int        `json:"wal_segments"`
	RestorePoint    string     `json:"restore_point,omitempty"`
	RestorePointLSN string     `json:"restore_point_lsn,omitempty"`
	RestorePointAt  *time.Time `json:"restore_point_at,omitempty"` // the server's clock_timestamp()
	Error           string     `json:"error,omitempty"`
	// Err is the node's error (nil when done).
	Err error `json:"-"`
	// Result is the node's mux result.
	Result mux.Result `json:"-"`
}

// Seconds is a duration written in JSON as seconds.
type Seconds time.Duration

// MarshalJSON writes the seconds rounded to the millisecond: 2.236, not the float sum
// 2.2359999999999998 that Duration.Seconds can give.
func (s Seconds) MarshalJSON() ([]byte, error) {
	ms := time.Duration(s).Round(time.Millisecond).Milliseconds()
	return strconv.AppendFloat(nil, float64(ms)/1000, 'f', -1, 64), nil
}

// UnmarshalJSON reads seconds.
func (s *Seconds) UnmarshalJSON(b []byte) error {
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return err
	}
	*s = Seconds(f * float64(time.Second))
	return nil
}

// Report is what Backup returns: one NodeReport per node, in the order given.
type Report struct {
	Mode         string       `json:"mode"` // "consistent" or "independent"
	Fence        string       `json:"fence,omitempty"`
	RestorePoint string       `json:"restore_point,omitempty"`
	Started      time.Time    `json:"started"`
	Duration     Seconds      `json:"duration_seconds"`
	OK           bool         `json:"ok"`
	Nodes        []NodeReport `json:"nodes"`
	// RestorePointSpread is the time between the first and the last node's restore point
	// (server clocks). With the Citus fence the workers' points are written by the
	// coordinator, which does not say when: their time is the coordinator's, the spread 0.
	RestorePointSpread Seconds `json:"restore_point_spread_seconds"`
	// RestorePointTime is the time from the barrier (every node's data done) to every node
	// having its point: connections, fence, restore points, flush.
	RestorePointTime Seconds              `json:"restore_point_seconds"`
	Budget           *ringbuf.BudgetStats `json:"memory_budget,omitempty"`
	Error            string               `json:"error,omitempty"`
}

// Failed returns the names of the nodes that failed or were cancelled (what a rerun needs).
func (r Report) Failed() []string {
	var names []string
	for _, n := range r.Nodes {
		if n.State != StateDone {
			names = append(names, n.Name)
		}
	}
	return names
}

// Error is a node's failure as Backup returns it.
type Error struct {
	Node string
	Err  error
}

func (e *Error) Error() string {
	var me *mux.Error
	if errors.As(e.Err, &me) && me.Server == e.Node {
		return e.Err.Error() // it names the node already
	}
	return fmt.Sprintf("fleet: %s: %v", e.Node, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// errCancelled matches the cause given to the other nodes when one fails.
var errCancelled = errors.New("cancelled: another node of the fleet failed")

// cancelledBy is that cause, naming the node that failed.
type cancelledBy string

func (c cancelledBy) Error() string {
	if c == "fleet" {
		return "cancelled: the fleet's restore point failed"
	}
	return "cancelled: node " + string(c) + " failed"
}

func (c cancelledBy) Is(target error) bool { return target == errCancelled }

// RecoverySettings are the settings a consistent fleet backup appends to each node's
// postgresql.auto.conf (with a recovery.signal), so that extracting the stream and starting
// PostgreSQL replays the WAL in the stream up to the restore point, stops there and promotes:
//
//   - recovery_target_name: the restore point; recovery stops after replaying it.
//   - recovery_target_action = 'promote': open for writes at the point (the default, pause,
//     would leave the server read-only waiting for pg_wal_replay_resume()).
//   - recovery_target_timeline = 'latest' (PostgreSQL's default, set against a different
//     value in postgresql.conf): the point was written on the backup's end timeline, which is
//     the newest one whose history file the stream carries when the server was promoted
//     during the backup; with restore_command failing, no other timeline can be found.
//   - restore_command = 'false': targeted recovery (recovery.signal) refuses to start without
//     a restore_command; one that always fails makes recovery read only the WAL the stream put
//     in pg_wal.
//
// recovery_target_inclusive is left alone: it applies to LSN, time and xid targets only; a
// named restore point is always replayed.
func RecoverySettings(name string) string {
	return "# walweave fleet: recover to the fleet's restore point, then promote\n" +
		"recovery_target_name = " + quote(name) + "\n" +
		"recovery_target_action = 'promote'\n" +
		"recovery_target_timeline = 'latest'\n" +
		"restore_command = 'false'\n"
}

func quote(s string) string {
	return "'" + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), "'", `''`) + "'"
}

// Backup backs up every node at once, each with its own mux.Session to its own destination.
//
// Consistent mode (the default): the first failure on any node cancels every other node
// within seconds (their sessions abort, leaving nothing on the servers) and every destination
// is aborted. Once every node's data is done (the barrier), the fence is taken, a restore
// point of one name is written on every node, the fence is released, each node's WAL is
// flushed past its point, and each stream is extended to carry that WAL plus
// RecoverySettings. Destinations are committed only when every node's stream is complete.
//
// Independent mode: each node is backed up on its own and committed when done.
//
// The Report is always filled in; the error is the first node's failure (an *Error).
func Backup(ctx context.Context, nodes []Node, opts Options) (Report, error) {
	f, err := newFleet(nodes, opts)
	if err != nil {
		return f.report, err
	}
	return f.run(ctx)
}

type fleet struct {
	nodes  []Node
	opts   Options
	log    *slog.Logger
	budget *ringbuf.Budget
	rp     string
	report Report
	mu     sync.Mutex // guards report.Nodes[*] while nodes run

	ctx    context.Context // cancelled by the first failure (consistent mode)
	cancel context.CancelCauseFunc
	first  error // the first failure

	dataDone chan int       // node index, after CopyData
	complete chan int       // node index, after Finish and Destination.Close
	points   []chan rpPoint // per node: where to extend the WAL to
	commit   chan bool      // closed decision: true = commit
	decision bool
}

type rpPoint struct {
	lsn pgrepl.LSN
}

func newFleet(nodes []Node, opts Options) (*fleet, error) {
	f := &fleet{nodes: nodes, opts: opts, log: opts.Logger}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	f.report = Report{Mode: "consistent", Started: time.Now()}
	if opts.Independent {
		f.report.Mode = "independent"
	}
	for _, n := range nodes {
		f.report.Nodes = append(f.report.Nodes, NodeReport{Name: n.Name, State: StatePending})
	}
	if len(nodes) == 0 {
		return f, errors.New("fleet: no nodes")
	}
	seen := map[string]bool{}
	for _, n := range nodes {
		if n.Name == "" || strings.ContainsAny(n.Name, " \t\n/,=") {
			return f, fmt.Errorf("fleet: node name %q: must be non-empty, without spaces, '/', ',' or '='", n.Name)
		}
		if seen[n.Name] {
			return f, fmt.Errorf("fleet: node %q given twice", n.Name)
		}
		seen[n.Name] = true
		if n.Dest == nil {
			return f, fmt.Errorf("fleet: node %q has no destination", n.Name)
		}
	}
	if err := opts.Config.Validate(); err != nil {
		return f, err
	}
	if !opts.Independent {
		if opts.Config.WriteRecoveryConf {
			return f, errors.New("fleet: a consistent fleet backup recovers to its restore point and promotes; standby.signal (WriteRecoveryConf, -R) would override that: use independent mode for standbys")
		}
		if opts.Fence.Kind != FenceNone && !seen[opts.Fence.Node] {
			return f, fmt.Errorf("fleet: the fence's node %q is not one of the nodes", opts.Fence.Node)
		}
		f.rp = opts.RestorePoint
		if f.rp == "" {
			f.rp = "walweave-fleet-" + time.Now().UTC().Format("20060102T150405.000Z")
		}
		f.report.RestorePoint = f.rp
		f.report.Fence = opts.Fence.String()
	} else if opts.Fence.Kind != FenceNone {
		return f, errors.New("fleet: a fence is for consistent mode; independent mode writes no restore point")
	}
	if f.opts.FenceTimeout <= 0 {
		f.opts.FenceTimeout = time.Minute
	}
	if opts.MemoryBudget > 0 {
		f.budget = ringbuf.NewBudget(opts.MemoryBudget)
	}
	return f, nil
}

// nodeConfig is the mux.Config of node i.
func (f *fleet) nodeConfig(i int) mux.Config {
	n := f.nodes[i]
	cfg := f.opts.Config
	cfg.Name = n.Name
	cfg.ConnString = n.ConnString
	cfg.Budget = f.budget
	cfg.Logger = f.log.With("node", n.Name)
	if t := f.opts.MaxRateTotal; t > 0 {
		share := max(t/int64(len(f.nodes)), 32*1024)
		if cfg.MaxRate == 0 || share < cfg.MaxRate {
			cfg.MaxRate = share
		}
	}
	if f.opts.Progress != nil {
		name := n.Name
		cfg.Progress = func(p mux.Progress) { f.opts.Progress(name, p) }
	}
	return cfg
}

func (f *fleet) run(ctx context.Context) (Report, error) {
	f.ctx, f.cancel = context.WithCancelCause(ctx)
	defer f.cancel(nil)
	n := len(f.nodes)
	f.dataDone = make(chan int, n)
	f.complete = make(chan int, n)
	f.commit = make(chan bool)
	f.points = make([]chan rpPoint, n)
	for i := range f.points {
		f.points[i] = make(chan rpPoint, 1)
	}
	if !f.opts.Independent {
		// Fail before the long part: every node must be able to write the restore point.
		if err := f.precheck(f.ctx); err != nil {
			f.fail(-1, err)
			f.finishReport()
			return f.report, f.first
		}
	}
	var wg sync.WaitGroup
	for i := range f.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.runNode(i)
		}()
	}
	if !f.opts.Independent {
		f.coordinate()
	}
	wg.Wait()
	f.finishReport()
	return f.report, f.first
}

// fail records a node's failure (i < 0: the fleet's own step) and, in consistent mode,
// cancels every other node.
func (f *fleet) fail(i int, err error) {
	name := "fleet"
	if i >= 0 {
		name = f.nodes[i].Name
	}
	f.mu.Lock()
	// In consistent mode, a node that fails after the first failure was cancelled by it.
	cancelled := !f.opts.Independent && f.first != nil
	// The caller's cancellation (an interrupt) stops every node: none failed on its own.
	interrupted := f.ctx.Err() != nil && !errors.Is(context.Cause(f.ctx), errCancelled) && errors.Is(err, context.Cause(f.ctx))
	if !errors.Is(err, errCancelled) {
		var fe *Error
		if !errors.As(err, &fe) {
			err = &Error{Node: name, Err: err}
		}
	}
	if f.first == nil {
		f.first = err
	}
	if i >= 0 {
		r := &f.report.Nodes[i]
		r.State = StateFailed
		if cancelled || interrupted {
			r.State = StateCancelled
		}
		r.Err = err
		r.Error = err.Error()
	}
	f.mu.Unlock()
	if !f.opts.Independent && !cancelled {
		f.cancel(cancelledBy(name))
	}
}

func (f *fleet) setNode(i int, fn func(*NodeReport)) {
	f.mu.Lock()
	fn(&f.report.Nodes[i])
	f.mu.Unlock()
}

func (f *fleet) finishReport() {
	f.report.Duration = Seconds(time.Since(f.report.Started))
	f.report.OK = f.first == nil
	if f.first != nil {
		f.report.Error = f.first.Error()
	}
	if f.budget != nil {
		st := f.budget.Stats()
		f.report.Budget = &st
	}
	var lo, hi time.Time
	for _, r := range f.report.Nodes {
		if r.RestorePointAt == nil {
			continue
		}
		if lo.IsZero() || r.RestorePointAt.Before(lo) {
			lo = *r.RestorePointAt
		}
		if r.RestorePointAt.After(hi) {
			hi = *r.RestorePointAt
		}
	}
	f.report.RestorePointSpread = Seconds(hi.Sub(lo))
}

// runNode runs node i's backup from start to commit or abort.
func (f *fleet) runNode(i int) {
	ctx := f.ctx
	start := time.Now()
	f.setNode(i, func(r *NodeReport) { r.State = StateRunning })
	var s *mux.Session
	var dest Destination
	finish := func(err error) {
		if s != nil {
			s.Close()
			res := s.Result()
			f.setNode(i, func(r *NodeReport) {
				r.Result = res
				r.Bytes = res.BytesWritten
				r.WALSegments = res.WALSegments
				r.Timeline = res.EndTimeline
				if res.StartLSN != 0 {
					r.StartLSN = res.StartLSN.String()
				}
				if res.EndLSN != 0 {
					r.EndLSN = res.EndLSN.String()
				}
			})
		}
		if err != nil {
			var me *mux.Error
			if errors.As(err, &me) {
				f.setNode(i, func(r *NodeReport) { r.Phase = me.Phase })
			}
			if !f.opts.Independent && errors.Is(context.Cause(f.ctx), errCancelled) && (errors.Is(err, context.Canceled) || errors.Is(err, errCancelled)) {
				err = context.Cause(f.ctx)
			}
			f.fail(i, err)
			if dest != nil {
				dest.Abort(err)
			}
		}
		f.setNode(i, func(r *NodeReport) {
			r.Duration = Seconds(time.Since(start))
			if err == nil {
				r.State = StateDone
			}
		})
	}
	// In consistent mode every exit before the commit decision must be reported to the
	// coordinator, which waits for all nodes at the barrier and at completion.
	sentData, sentComplete := false, false
	defer func() {
		if !f.opts.Independent {
			if !sentData {
				f.dataDone <- -1 - i
			}
			if !sentComplete {
				f.complete <- -1 - i
			}
		}
	}()

	var err error
	dest, err = f.nodes[i].Dest(ctx)
	if err != nil {
		dest = nil
		finish(fmt.Errorf("destination: %w", err))
		return
	}
	s, err = mux.Start(ctx, dest, f.nodeConfig(i))
	if err != nil {
		finish(err)
		return
	}
	end, err := s.CopyData(ctx)
	if err != nil {
		finish(err)
		return
	}
	if !f.opts.Independent {
		sentData = true
		f.dataDone <- i
		var pt rpPoint
		select {
		case pt = <-f.points[i]:
		case <-ctx.Done():
			finish(context.Cause(ctx))
			return
		}
		f.log.Debug("extending WAL to the restore point", "node", f.nodes[i].Name, "data_end", end.EndLSN, "restore_point", pt.lsn)
		if err := s.ExtendWAL(pt.lsn); err != nil {
			finish(err)
			return
		}
		if err := s.AppendRecoveryConf(RecoverySettings(f.rp)); err != nil {
			finish(err)
			return
		}
	}
	if _, err := s.Finish(ctx); err != nil {
		finish(err)
		return
	}
	if err := closeDest(ctx, dest); err != nil {
		finish(&mux.Error{Server: f.nodes[i].Name, Side: mux.SideOutput, Phase: mux.PhaseDone, Step: "close the destination", Err: err})
		return
	}
	if !f.opts.Independent {
		sentComplete = true
		f.complete <- i
		<-f.commit
		f.mu.Lock()
		commit := f.decision
		f.mu.Unlock()
		if !commit {
			finish(errCancelled)
			return
		}
	}
	if err := dest.Commit(); err != nil {
		finish(&mux.Error{Server: f.nodes[i].Name, Side: mux.SideOutput, Phase: mux.PhaseDone, Step: "commit the destination", Err: err})
		return
	}
	finish(nil)
}

// coordinate is the consistent mode's conductor: barrier, fence, restore points, flush, and
// the commit decision.
func (f *fleet) coordinate() {
	n := len(f.nodes)
	ok := true
	for range n {
		if i := <-f.dataDone; i < 0 {
			ok = false
		}
	}
	if ok && f.ctx.Err() == nil {
		start := time.Now()
		if err := f.restorePoints(f.ctx); err != nil {
			f.fail(-1, err)
		}
		f.mu.Lock()
		f.report.RestorePointTime = Seconds(time.Since(start))
		f.mu.Unlock()
	}
	for range n {
		<-f.complete
	}
	f.mu.Lock()
	f.decision = f.first == nil && f.ctx.Err() == nil
	f.mu.Unlock()
	close(f.commit)
}

// sqlConfig is node i's plain SQL connection configuration.
func (f *fleet) sqlConfig(i int) (*pgconn.Config, error) {
	n := f.nodes[i]
	cs := n.SQLConnString
	explicit := cs != ""
	if !explicit {
		cs = n.ConnString
	}
	pc, err := pgconn.ParseConfig(cs)
	if err != nil {
		return nil, fmt.Errorf("%s: SQL connection string: %w", n.Name, err)
	}
	if !explicit && !mentionsDatabase(cs) {
		pc.Database = "postgres"
	}
	delete(pc.RuntimeParams, "replication")
	return pc, nil
}

// mentionsDatabase reports whether a connection string names a database.
func mentionsDatabase(cs string) bool {
	if strings.HasPrefix(cs, "postgres://") || strings.HasPrefix(cs, "postgresql://") {
		rest := cs[strings.Index(cs, "://")+3:]
		if i := strings.IndexAny(rest, "?"); i >= 0 {
			if strings.Contains(rest[i:], "dbname=") {
				return true
			}
			rest = rest[:i]
		}
		slash := strings.Index(rest, "/")
		return slash >= 0 && slash < len(rest)-1
	}
	return strings.Contains(cs, "dbname")
}

func (f *fleet) connect(ctx context.Context, i int) (*pgconn.PgConn, error) {
	pc, err := f.sqlConfig(i)
	if err != nil {
		return nil, err
	}
	c, err := pgconn.ConnectConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("SQL connection: %w", err)
	}
	return c, nil
}

// query runs one statement and returns the first row's columns as text.
func query(ctx context.Context, c *pgconn.PgConn, sql string, args ...string) ([]string, error) {
	params := make([][]byte, len(args))
	for i, a := range args {
		params[i] = []byte(a)
	}
	res := c.ExecParams(ctx, sql, params, nil, nil, nil).Read()
	if res.Err != nil {
		return nil, res.Err
	}
	if len(res.Rows) == 0 {
		return nil, nil
	}
	out := make([]string, len(res.Rows[0]))
	for j, v := range res.Rows[0] {
		out[j] = string(v)
	}
	return out, nil
}

// eachNode runs fn on every node in parallel and returns the first error.
func (f *fleet) eachNode(fn func(i int) error) error {
	errs := make([]error, len(f.nodes))
	var wg sync.WaitGroup
	for i := range f.nodes {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = fn(i) }()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			var fe *Error
			if errors.As(err, &fe) {
				return err
			}
			return &Error{Node: f.nodes[i].Name, Err: err}
		}
	}
	return nil
}

func (f *fleet) fenceIndex() int {
	for i, n := range f.nodes {
		if n.Name == f.opts.Fence.Node {
			return i
		}
	}
	return -1
}

// precheck connects to every node before the backups start: a primary, allowed to write a
// restore point (and Citus's function on the coordinator).
func (f *fleet) precheck(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	return f.eachNode(func(i int) error {
		c, err := f.connect(ctx, i)
		if err != nil {
			return err
		}
		defer c.Close(context.Background())
		fn := "pg_create_restore_point(text)"
		if f.opts.Fence.Kind == FenceCitus && f.nodes[i].Name == f.opts.Fence.Node {
			fn = "citus_create_restore_point(text)"
		}
		row, err := query(ctx, c, "SELECT pg_is_in_recovery()::text, has_function_privilege($1, 'EXECUTE')::text", fn)
		if err != nil {
			return fmt.Errorf("check the restore point privilege: %w", err)
		}
		if row[0] == "true" {
			return errors.New("the server is a standby (in recovery): a restore point can only be written on a primary")
		}
		if row[1] != "true" {
			return fmt.Errorf("the role may not run %s: connect as a superuser, or GRANT EXECUTE ON FUNCTION %s TO the role", fn, fn)
		}
		return nil
	})
}

// restorePoints runs after the barrier: the fence, a restore point on every node, the fence
// released, each node's WAL flushed past its point; then every node gets its point.
func (f *fleet) restorePoints(ctx context.Context) error {
	n := len(f.nodes)
	conns := make([]*pgconn.PgConn, n)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close(context.Background())
			}
		}
	}()
	if err := f.eachNode(func(i int) (err error) { conns[i], err = f.connect(ctx, i); return err }); err != nil {
		return err
	}
	lsns := make([]pgrepl.LSN, n)
	ats := make([]time.Time, n)
	create := func(ctx context.Context, i int, sql string) error {
		row, err := query(ctx, conns[i], sql, f.rp)
		if err != nil {
			return fmt.Errorf("create the restore point: %w", err)
		}
		if lsns[i], err = pgrepl.ParseLSN(row[0]); err != nil {
			return err
		}
		ats[i], err = time.Parse("2006-01-02 15:04:05.999999-07", row[1])
		if err != nil {
			ats[i] = time.Now()
		}
		return nil
	}
	const tsq = "to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'"
	switch f.opts.Fence.Kind {
	case FenceCitus:
		ci := f.fenceIndex()
		cctx, cancel := context.WithTimeout(ctx, f.opts.FenceTimeout) // it waits for commits in flight
		err := create(cctx, ci, "SELECT citus_create_restore_point($1)::text, "+tsq)
		cancel()
		if err != nil {
			return &Error{Node: f.nodes[ci].Name, Err: err}
		}
		// The workers' points were written by the coordinator; their own WAL position now is
		// past them.
		if err := f.eachNode(func(i int) error {
			if i == ci {
				return nil
			}
			row, err := query(ctx, conns[i], "SELECT pg_current_wal_insert_lsn()::text, "+tsq)
			if err != nil {
				return err
			}
			lsns[i], err = pgrepl.ParseLSN(row[0])
			ats[i] = ats[ci]
			return err
		}); err != nil {
			return err
		}
	default:
		if f.opts.Fence.Kind == FenceAdvisory {
			fi := f.fenceIndex()
			fctx, cancel := context.WithTimeout(ctx, f.opts.FenceTimeout)
			_, err := query(fctx, conns[fi], "SELECT pg_advisory_lock($1::bigint)::text", strconv.FormatInt(f.opts.Fence.Key, 10))
			timedOut := fctx.Err() != nil && ctx.Err() == nil
			cancel()
			if timedOut {
				err = fmt.Errorf("not granted within %v: a session holds pg_advisory_lock_shared(%d) or pg_advisory_xact_lock_shared(%d) that long (a distributed commit that does not finish?): %w", f.opts.FenceTimeout, f.opts.Fence.Key, f.opts.Fence.Key, err)
			}
			if err != nil {
				return &Error{Node: f.nodes[fi].Name, Err: fmt.Errorf("take the fence (pg_advisory_lock(%d)): %w", f.opts.Fence.Key, err)}
			}
			f.log.Info("fence taken", "fence", f.opts.Fence.String())
		}
		err := f.eachNode(func(i int) error {
			return create(ctx, i, "SELECT pg_create_restore_point($1)::text, "+tsq)
		})
		if f.opts.Fence.Kind == FenceAdvisory {
			fi := f.fenceIndex()
			if _, uerr := query(ctx, conns[fi], "SELECT pg_advisory_unlock($1::bigint)::text", strconv.FormatInt(f.opts.Fence.Key, 10)); uerr != nil && err == nil {
				err = &Error{Node: f.nodes[fi].Name, Err: fmt.Errorf("release the fence: %w", uerr)}
			}
		}
		if err != nil {
			return err
		}
	}
	for i := range f.nodes {
		at := ats[i]
		f.setNode(i, func(r *NodeReport) {
			r.RestorePoint, r.RestorePointLSN, r.RestorePointAt = f.rp, lsns[i].String(), &at
		})
	}
	f.log.Info("restore points written", "name", f.rp)
	// pg_create_restore_point inserts its record without flushing it, and a walsender sends
	// only flushed WAL: commit a transaction with an xid (synchronous_commit local: its commit
	// flushes everything before it), then check the flush position.
	if err := f.eachNode(func(i int) error {
		if err := conns[i].Exec(ctx, "SET synchronous_commit TO local; SELECT pg_current_xact_id()").Close(); err != nil {
			if ctx.Err() != nil {
				return err
			}
			// (no EXECUTE on pg_current_xact_id, say): the WAL writer flushes on its own within
			// wal_writer_delay; wait for it below.
			f.log.Warn("could not commit a transaction to flush the restore point; waiting for the WAL writer", "node", f.nodes[i].Name, "err", err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			row, err := query(ctx, conns[i], "SELECT (pg_current_wal_flush_lsn() >= $1::pg_lsn)::text", lsns[i].String())
			if err != nil {
				return fmt.Errorf("check the flush position: %w", err)
			}
			if row[0] == "true" {
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("the restore point at %s was not flushed within 30s", lsns[i])
			}
			time.Sleep(50 * time.Millisecond)
		}
	}); err != nil {
		return err
	}
	for i := range f.nodes {
		f.points[i] <- rpPoint{lsn: lsns[i]}
	}
	return nil
}

// closeDest closes dest, or aborts it when ctx ends first (a command still uploading is
// terminated rather than left to complete).
func closeDest(ctx context.Context, dest Destination) error {
	done := make(chan error, 1)
	go func() { done <- dest.Close() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		dest.Abort(context.Cause(ctx))
		<-done
		return context.Cause(ctx)
	}
}
