package main

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/walweave/walweave/internal/pgrepl"
	"github.com/walweave/walweave/pgformat"
	"github.com/walweave/walweave/walarchive"
)

// exitArchiveFailure is wal get's status for a failure that is not "not in the archive":
// above 125, which PostgreSQL's recovery treats as fatal instead of the end of the archive.
const exitArchiveFailure = 126

const walLong = `Keeps the WAL between backups, for point-in-time recovery: "wal stream" archives WAL
continuously through a permanent replication slot, "wal get" is restore_command's helper,
"wal verify" checks an archive, "wal prune" deletes what no backup needs any more.`

func newWALCmd(a *app) *cobra.Command {
	return newGroupCmd(a, "wal", "keep the WAL between backups: stream, get, verify, prune", walLong,
		newWALStreamCmd(a), newWALGetCmd(a), newWALVerifyCmd(a), newWALPruneCmd(a))
}

type walStreamFlags struct {
	dbname, host, port, user string
	slot                     string
	createSlot               bool
	dir, exec                string
	compress                 string
	synchronous              bool
	progress, verbose        bool
	statusFile, metricsAddr  string
	retryFor                 time.Duration
}

const walStreamLong = `Streams WAL through a permanent physical replication slot into an archive, until SIGTERM or
SIGINT (then it exits 0, the segment in progress written as NAME.partial). It starts after the
archive's newest complete segment (else at the slot's restart_lsn), so the same command line
restarts it after a crash, a server restart or a network cut with no hole; it reconnects by
itself with backoff, saying so on stderr. The slot is advanced only past WAL the archive stored
durably.

With -o DIR each complete segment is DIR/<24 hex digits> (.zst or .lz4 with --compress),
written to a temporary name, fsynced, renamed, the directory fsynced; timeline history files
DIR/<8 hex>.history; the segment in progress NAME.partial. With --exec CMD, each complete
segment and history file is given to one "sh -c CMD" with {segment} replaced by its file name
and the bytes on stdin; exit status 0 means stored. A failure is retried with backoff, never
skipped; after --retry-for it stops with an error (the slot keeps the WAL).

--synchronous (with -o) makes the partial segment durable before each flush report, so that
walweave (application_name "walweave" unless the connection string sets one) can be listed in
synchronous_standby_names for zero data loss.`

const walStreamExample = `  walweave wal stream -d "host=db user=archiver" -S walweave_archive --create-slot -o /var/lib/walweave/wal --compress zstd
  walweave wal stream -d "$DSN" -S walweave_archive --exec 'aws s3 cp - s3://bucket/wal/{segment}'`

func newWALStreamCmd(a *app) *cobra.Command {
	var f walStreamFlags
	cmd := &cobra.Command{
		Use:     "stream -d CONNSTR -S SLOT (-o DIR | --exec CMD) [flags]",
		Short:   "archive WAL continuously through a replication slot",
		Long:    walStreamLong,
		Example: walStreamExample,
		Args:    a.maxArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runWALStream(a, &f)
		},
	}
	fs := cmd.Flags()
	fs.StringVarP(&f.dbname, "dbname", "d", "", "connection string `CONNSTR` (keyword/value or URL)")
	fs.StringVarP(&f.host, "host", "h", "", "server `HOST` or socket directory (overrides the connection string)")
	fs.Bool("help", false, "help for this command (-h is --host)")
	fs.StringVarP(&f.port, "port", "p", "", "server `PORT`")
	fs.StringVarP(&f.user, "username", "U", "", "connect as `USER` (a role with REPLICATION)")
	fs.StringVarP(&f.slot, "slot", "S", "", "permanent physical replication `SLOT` to stream through (required)")
	fs.BoolVar(&f.createSlot, "create-slot", false, "create the slot when it does not exist (no-op when it does)")
	fs.StringVarP(&f.dir, "directory", "o", "", "archive into directory `DIR`")
	fs.StringVar(&f.exec, "exec", "", "store each file with `CMD` run by sh -c ({segment}: the file name; the bytes on stdin)")
	fs.StringVar(&f.compress, "compress", "none", "compress complete segments: `none|zstd[:LEVEL]|lz4`")
	fs.BoolVar(&f.synchronous, "synchronous", false, "with -o: fsync the partial segment before each flush report (synchronous standby)")
	fs.BoolVarP(&f.progress, "progress", "P", false, "show a progress line on stderr")
	fs.StringVar(&f.statusFile, "status-file", "", "keep a JSON status in `FILE` (rewritten atomically every second)")
	fs.StringVar(&f.metricsAddr, "metrics-addr", "", "serve Prometheus metrics on `HOST:PORT` at /metrics")
	fs.DurationVar(&f.retryFor, "retry-for", walarchive.DefaultRetryFor, "give up when the archive keeps failing for `DURATION`")
	fs.BoolVarP(&f.verbose, "verbose", "v", false, "log every segment on stderr")
	return cmd
}

func runWALStream(a *app, f *walStreamFlags) error {
	switch {
	case f.slot == "":
		return usagef("-S SLOT is required: the permanent replication slot that holds the WAL for the archive (with --create-slot to create it)")
	case (f.dir == "") == (f.exec == ""):
		return usagef("give one of -o DIR and --exec CMD")
	case f.synchronous && f.dir == "":
		return usagef("--synchronous needs -o DIR (the partial segment is kept there)")
	case f.retryFor <= 0:
		return usagef("--retry-for must be positive")
	}
	comp, err := walarchive.ParseCompression(f.compress)
	if err != nil {
		return usagef("--compress: %s", strings.TrimPrefix(err.Error(), "walarchive: "))
	}
	conn, err := connString(f.dbname, f.host, f.port, f.user)
	if err != nil {
		return usagef("%v", err)
	}
	cc, err := pgrepl.ParseConfig(conn)
	if err != nil {
		return usagef("%s", describeParseError(conn, err))
	}
	if cc.ConnectTimeout == 0 {
		cc.ConnectTimeout = 30 * time.Second
	}
	pgrepl.ApplyTCP(cc, pgrepl.TCP{KeepaliveIdle: 10 * time.Second, KeepaliveInterval: 5 * time.Second, KeepaliveCount: 6, UserTimeout: 40 * time.Second})
	var sink walarchive.Sink
	if f.dir != "" {
		if sink, err = walarchive.NewDirSink(f.dir); err != nil {
			return usagef("-o %s: %v", f.dir, err)
		}
	} else {
		sink = &walarchive.ExecSink{Command: f.exec}
	}
	level := slog.LevelInfo
	if f.verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: level}))
	arch, err := walarchive.New(walarchive.Config{ConnConfig: cc, Slot: f.slot, CreateSlot: f.createSlot, Sink: sink,
		Compression: comp, Synchronous: f.synchronous, RetryFor: f.retryFor, Logger: logger})
	if err != nil {
		return usagef("%s", strings.TrimPrefix(err.Error(), "walarchive: "))
	}
	var srv *http.Server
	var srvDone chan error
	if f.metricsAddr != "" {
		ln, err := net.Listen("tcp", f.metricsAddr)
		if err != nil {
			return usagef("--metrics-addr: %v", err)
		}
		srv = &http.Server{Handler: metricsHandler(arch), ReadHeaderTimeout: 10 * time.Second}
		srvDone = make(chan error, 1)
		go func() { srvDone <- srv.Serve(ln) }()
	}
	ctx, cancel := context.WithCancel(a.ctx)
	defer cancel()
	var wg sync.WaitGroup
	if f.progress || f.statusFile != "" {
		wg.Add(1)
		go func() {
			defer wg.Done()
			reportStatus(ctx, arch, f, a.stderr)
		}()
	}
	runErr := arch.Run(ctx)
	cancel()
	wg.Wait()
	if f.statusFile != "" {
		if err := writeStatusFile(f.statusFile, arch.Status()); err != nil {
			fmt.Fprintf(a.stderr, "walweave wal stream: status file: %v\n", err)
		}
	}
	if f.progress {
		fmt.Fprintln(a.stderr)
	}
	if srv != nil {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = srv.Shutdown(sctx)
		scancel()
		<-srvDone
	}
	if runErr != nil {
		return runErr
	}
	st := arch.Status()
	fmt.Fprintf(a.stderr, "walweave wal stream: stopped; %s stored, flushed up to %s (last complete segment %s)\n",
		plural(int(st.Segments), "segment"), st.FlushLSN, orNone(st.LastSegment))
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// reportStatus writes the progress line and the status file every second until ctx ends.
func reportStatus(ctx context.Context, arch *walarchive.Archiver, f *walStreamFlags, stderr io.Writer) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st := arch.Status()
		if f.progress {
			state := "streaming"
			switch {
			case st.SinkFailing:
				state = "archive failing, retrying"
			case !st.Connected:
				state = "reconnecting"
			}
			fmt.Fprintf(stderr, "\r%s stored, last %s, flushed %s, lag %s (%s)\x1b[K", plural(int(st.Segments), "segment"),
				orNone(st.LastSegment), st.FlushLSN, byteSize(st.LagBytes), state)
		}
		if f.statusFile != "" {
			if err := writeStatusFile(f.statusFile, st); err != nil {
				fmt.Fprintf(stderr, "walweave wal stream: status file: %v\n", err)
			}
		}
	}
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// writeStatusFile rewrites the status file atomically (temporary file, rename).
func writeStatusFile(path string, st walarchive.Status) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		_ = tmp.Close()
		_ = os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		_ = os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// metricsHandler serves the archiver's status as Prometheus metrics.
func metricsHandler(arch *walarchive.Archiver) http.Handler {
	reg := prometheus.NewRegistry()
	gauge := func(name, help string, f func(walarchive.Status) float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "walweave", Subsystem: "wal_archive", Name: name, Help: help},
			func() float64 { return f(arch.Status()) }))
	}
	counter := func(name, help string, f func(walarchive.Status) float64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "walweave", Subsystem: "wal_archive", Name: name, Help: help},
			func() float64 { return f(arch.Status()) }))
	}
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	gauge("flush_lsn_bytes", "WAL position stored durably and reported as flushed, in bytes.", func(s walarchive.Status) float64 { return float64(s.FlushLSN) })
	gauge("server_lsn_bytes", "The server's end of WAL, last heard, in bytes.", func(s walarchive.Status) float64 { return float64(s.ServerLSN) })
	gauge("lag_bytes", "How far the archive is behind the server, in bytes.", func(s walarchive.Status) float64 { return float64(s.LagBytes) })
	gauge("timeline", "The timeline streamed.", func(s walarchive.Status) float64 { return float64(s.Timeline) })
	gauge("connected", "1 while streaming.", func(s walarchive.Status) float64 { return b(s.Connected) })
	gauge("sink_failing", "1 while a store is being retried.", func(s walarchive.Status) float64 { return b(s.SinkFailing) })
	gauge("last_success_timestamp_seconds", "When the archive last stored a file (Unix time).", func(s walarchive.Status) float64 {
		if s.LastSuccess.IsZero() {
			return 0
		}
		return float64(s.LastSuccess.UnixNano()) / 1e9
	})
	counter("segments_total", "Complete segments stored.", func(s walarchive.Status) float64 { return float64(s.Segments) })
	counter("history_files_total", "Timeline history files stored.", func(s walarchive.Status) float64 { return float64(s.HistoryFiles) })
	counter("wal_bytes_total", "WAL bytes in the segments stored.", func(s walarchive.Status) float64 { return float64(s.WALBytes) })
	counter("stored_bytes_total", "Bytes handed to the archive (after compression).", func(s walarchive.Status) float64 { return float64(s.StoredBytes) })
	counter("reconnects_total", "Connections lost and made again.", func(s walarchive.Status) float64 { return float64(s.Reconnects) })
	counter("store_retries_total", "Failed store attempts that were retried.", func(s walarchive.Status) float64 { return float64(s.StoreRetries) })
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return mux
}

type walGetFlags struct {
	from, fromExec string
	retries        int
}

const walGetLong = `restore_command's helper: fetches SEGMENT (a WAL segment or timeline history file name, as
recovery's %f asks) from the archive, decompresses it, checks it (a segment's page headers and
record checksums; a history file's syntax) and writes DEST (%p) through a temporary name.

Exit status: 0 restored; 1, quietly, when the archive does not have the file (recovery reads
that as the end of the archive); 126 for any other failure (unreadable, corrupt, a command that
fails), after retrying: PostgreSQL treats a status above 125 as fatal instead of taking it
for the end of the archive.

With --from-exec, CMD (run by sh -c, {segment} replaced by the name) writes the file, as
stored (compressed or not), on stdout and exits 0, or exits 1 when the archive does not have
it; any other status is a failure.`

func newWALGetCmd(a *app) *cobra.Command {
	var f walGetFlags
	cmd := &cobra.Command{
		Use:     "get SEGMENT DEST (--from DIR | --from-exec CMD)",
		Short:   "fetch one WAL file from the archive (restore_command)",
		Long:    walGetLong,
		Example: `  restore_command = '/usr/local/bin/walweave wal get %f %p --from /var/lib/walweave/wal'`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 2 {
				return usagef("want SEGMENT and DEST (see %s --help)", cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runWALGet(a, &f, args[0], args[1])
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&f.from, "from", "", "the archive directory `DIR`")
	fs.StringVar(&f.fromExec, "from-exec", "", "fetch with `CMD` run by sh -c ({segment}: the name; the content on stdout; exit 1: not in the archive)")
	fs.IntVar(&f.retries, "retries", 3, "attempts before a failure other than not-found is final (`N`)")
	return cmd
}

func runWALGet(a *app, f *walGetFlags, name, dest string) error {
	if (f.from == "") == (f.fromExec == "") {
		return usagef("give one of --from DIR and --from-exec CMD")
	}
	var src walarchive.Source = walarchive.DirSource{Dir: f.from}
	if f.fromExec != "" {
		src = walarchive.ExecSource{Command: f.fromExec}
	}
	delay := 500 * time.Millisecond
	var err error
	for try := 1; try <= max(f.retries, 1); try++ {
		err = walarchive.Get(a.ctx, src, name, dest)
		if err == nil {
			return nil
		}
		if errors.Is(err, walarchive.ErrNotFound) {
			return a.exit(exitFailure)
		}
		if a.ctx.Err() != nil || try == max(f.retries, 1) {
			break
		}
		t := time.NewTimer(delay)
		select {
		case <-a.ctx.Done():
			t.Stop()
		case <-t.C:
		}
		delay *= 2
	}
	fmt.Fprintf(a.stderr, "walweave wal get: %s: %s (a failure, not the end of the archive: exit %d)\n", name, oneLine(err.Error()), exitArchiveFailure)
	return a.exit(exitArchiveFailure)
}

type walVerifyFlags struct{ from, to string }

func newWALVerifyCmd(a *app) *cobra.Command {
	var f walVerifyFlags
	cmd := &cobra.Command{
		Use:   "verify DIR [--from SEGMENT] [--to SEGMENT]",
		Short: "check a WAL archive directory",
		Long: `Checks an archive directory: every complete segment's page headers (magic, timeline, addresses,
the long header) and the chain of records of each timeline with every record's checksum, no
segment missing between the first and the last, the history files of every timeline above 1.
Exit status 0 when it is sound, 1 naming the first missing or bad segment (every problem is
listed on stdout), 2 on a usage error or an unreadable directory.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("want the archive directory DIR (see %s --help)", cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			rep, err := walarchive.Verify(a.ctx, args[0], walarchive.VerifyOptions{From: f.from, To: f.to})
			if err != nil {
				if a.ctx.Err() != nil {
					return err
				}
				return usagef("%s", strings.TrimPrefix(err.Error(), "walarchive: "))
			}
			for _, p := range rep.Problems {
				fmt.Fprintln(a.stdout, p.String())
			}
			summary := walVerifySummary(rep)
			if !rep.OK() {
				fmt.Fprintf(a.stderr, "walweave wal verify: %s; first problem: %s\n", summary, rep.Problems[0])
				return a.exit(exitFailure)
			}
			fmt.Fprintf(a.stdout, "%s: OK\n", summary)
			return nil
		},
	}
	cmd.Flags().StringVar(&f.from, "from", "", "check from `SEGMENT` on")
	cmd.Flags().StringVar(&f.to, "to", "", "check up to `SEGMENT`")
	return cmd
}

// walVerifySummary is wal verify's one-line summary of an archive.
func walVerifySummary(rep *walarchive.VerifyReport) string {
	s := fmt.Sprintf("%s from %s to %s on %s, %d records checked", plural(rep.Segments, "segment"), rep.First, rep.Last,
		plural(len(rep.Timelines), "timeline"), rep.Records)
	if n := len(rep.Abandoned); n > 0 {
		s += fmt.Sprintf(" (and %s, %s to %s, of a branch a failover abandoned: recovery to the latest timeline does not read them)",
			plural(n, "segment"), rep.Abandoned[0], rep.Abandoned[n-1])
	}
	return s
}

type walPruneFlags struct {
	beforeBackup, before string
	dryRun               bool
}

func newWALPruneCmd(a *app) *cobra.Command {
	var f walPruneFlags
	cmd := &cobra.Command{
		Use:   "prune DIR (--before-backup STREAM | --before SEGMENT) [--dry-run]",
		Short: "delete the segments older than a base backup needs",
		Long: `Deletes from an archive directory the complete and partial segments older than the first one a
base backup needs (its backup_label's START WAL LOCATION, read from the stream file, which may
be compressed), or older than --before SEGMENT. History files are kept. It prints each file it
deletes (with --dry-run: would delete) on stdout.`,
		Example: `  walweave wal prune /var/lib/walweave/wal --before-backup /backups/oldest-kept.tar.zst`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("want the archive directory DIR (see %s --help)", cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if (f.before == "") == (f.beforeBackup == "") {
				return usagef("give one of --before-backup STREAM and --before SEGMENT")
			}
			before := f.before
			if fn, ok := walarchive.ParseFileName(before); before != "" && (!ok || fn.Kind != walarchive.KindSegment || fn.Compression.Algorithm != walarchive.None) {
				return usagef("--before %q is not a WAL segment name (24 hex digits)", before)
			}
			if f.beforeBackup != "" {
				l, err := streamLabel(f.beforeBackup)
				if err != nil {
					return usagef("--before-backup %s: %v", f.beforeBackup, err)
				}
				before = l.StartSegment
			}
			names, err := walarchive.Prune(a.ctx, args[0], before, 0, f.dryRun)
			verb := "deleted"
			if f.dryRun {
				verb = "would delete"
			}
			for _, n := range names {
				fmt.Fprintf(a.stdout, "%s %s\n", verb, n)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stderr, "walweave wal prune: %s %s before %s\n", verb, plural(len(names), "file"), before)
			return nil
		},
	}
	cmd.Flags().StringVar(&f.beforeBackup, "before-backup", "", "keep what the base backup in stream `FILE` needs")
	cmd.Flags().StringVar(&f.before, "before", "", "delete the segments before `SEGMENT`")
	cmd.Flags().BoolVar(&f.dryRun, "dry-run", false, "delete nothing, print what would be deleted")
	return cmd
}

// streamLabel reads a stream file's backup_label (it comes before the data files).
func streamLabel(path string) (*pgformat.BackupLabel, error) {
	in, err := openInput([]string{path}, nil)
	if err != nil {
		return nil, err
	}
	defer in.close()
	tr := tar.NewReader(in)
	for {
		h, err := tr.Next()
		if err != nil {
			return nil, fmt.Errorf("no backup_label in the stream: %v", err)
		}
		if strings.TrimPrefix(h.Name, "./") != "backup_label" || h.Typeflag != tar.TypeReg {
			continue
		}
		raw, err := io.ReadAll(io.LimitReader(tr, pgformat.MaxBackupLabelSize))
		if err != nil {
			return nil, err
		}
		l, err := pgformat.ParseBackupLabel(raw)
		if err != nil {
			return nil, err
		}
		if l.StartSegment == "" {
			return nil, errors.New("backup_label has no START WAL LOCATION file")
		}
		return l, nil
	}
}
