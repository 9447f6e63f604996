package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/walweave/walweave/internal/humanize"
	"github.com/walweave/walweave/mux"
)

const backupLong = `Takes a physical backup of a PostgreSQL 15+ server and writes it as one tar stream to
stdout (or to -o FILE), with the WAL it needs woven in. Extract it with "tar -x" into an
empty directory: PostgreSQL starts on it with no archive. The role needs the REPLICATION
attribute, and the server two free walsenders (max_wal_senders) and a replication slot.

Flags mirror pg_basebackup's where the meaning is the same. pg_basebackup habits: -D -, -Ft,
-X stream, -X fetch and -w are accepted and change nothing; -z, -Z, -W, -T, --no-manifest,
-t, -D DIR, -Fp and -X none are refused with one line saying the walweave way.`

const backupExample = `  walweave backup -d "host=db user=backup" -c fast -P | zstd > base.tar.zst
  walweave backup -d "$DSN" -o base.tar --manifest-out base.manifest`

// backupFlags are walweave backup's flags; names mirror pg_basebackup's where the meaning
// is the same.
type backupFlags struct {
	dbname, host, port, user string
	label, checkpoint        string
	maxRate                  string
	slot                     string
	writeRecoveryConf        bool
	recoveryPassword         bool
	progress                 bool
	noVerifyChecksums        bool
	manifestChecksums        string
	verbose                  bool
	ringSlots                int
	compress                 string
	serverCompress           string
	jobs                     int
	output                   string
	tcpUserTimeout           time.Duration
	progressTimeout          time.Duration
	standbyConfig            string
	incremental, manifestOut string // walweave backup only (not fleet)
	force                    bool
	compressSet              bool // --compress was given
}

// register registers walweave backup's flags on fs (walweave fleet backup shares them).
func (f *backupFlags) register(fs *pflag.FlagSet) {
	fs.StringVarP(&f.dbname, "dbname", "d", "", "connection string `CONNSTR` (keyword/value or URL); PG* variables and .pgpass apply")
	fs.StringVarP(&f.host, "host", "h", "", "server `HOST` or socket directory (overrides the connection string)")
	fs.StringVarP(&f.port, "port", "p", "", "server `PORT`")
	fs.StringVarP(&f.user, "username", "U", "", "`ROLE` to connect as (needs REPLICATION)")
	fs.StringVarP(&f.label, "label", "l", "walweave", "backup `LABEL`")
	fs.StringVarP(&f.checkpoint, "checkpoint", "c", "spread", "checkpoint `MODE`: fast or spread (spread can wait minutes before the first byte)")
	fs.StringVarP(&f.maxRate, "max-rate", "r", "", "server send `RATE` limit in kB/s, with k or M suffix (32k..1024M)")
	fs.StringVarP(&f.slot, "slot", "S", "", "use this existing physical replication `SLOT` instead of a temporary one")
	fs.BoolVarP(&f.writeRecoveryConf, "write-recovery-conf", "R", false, "add standby.signal and primary_conninfo so the copy starts as a standby")
	fs.BoolVar(&f.recoveryPassword, "recovery-conf-password", false, "keep the password in primary_conninfo (left out by default)")
	fs.BoolVarP(&f.progress, "progress", "P", false, "show progress on stderr")
	fs.BoolVar(&f.noVerifyChecksums, "no-verify-checksums", false, "do not let the server verify data checksums")
	fs.StringVar(&f.manifestChecksums, "manifest-checksums", "CRC32C", "manifest checksum `ALGORITHM`: NONE, CRC32C, SHA224, SHA256, SHA384, SHA512")
	fs.BoolVarP(&f.verbose, "verbose", "v", false, "log what happens on stderr")
	fs.IntVar(&f.ringSlots, "ring-slots", 24, "`N` WAL segments that may wait in memory while a data file is copied")
	fs.StringVar(&f.compress, "compress", "none", "compress the stream: `SPEC` is none or lz4[:LEVEL] (LEVEL 0-9, several cores)")
	fs.StringVar(&f.serverCompress, "server-compress", "none", "have the server send its archives compressed, decompressed here: `SPEC` is none, lz4[:LEVEL] (LEVEL 1-12) or zstd[:level=N][,workers=N] (N server threads); less traffic, more CPU on both sides")
	fs.IntVar(&f.jobs, "jobs", 0, "read the data files over SQL on `N` connections (N >= 2; pg_read_binary_file inside pg_backup_start/stop) instead of BASE_BACKUP: N TCP flows for links that cap each one; needs superuser or the EXECUTE grants it names")
	fs.DurationVar(&f.tcpUserTimeout, "tcp-user-timeout", mux.DefaultTCPUserTimeout, "end a connection whose peer stopped acknowledging (cut network, dead host) after this long, on both ends; keepalive probes start after "+mux.DefaultKeepaliveIdle.String()+" of silence; negative: no user timeout")
	fs.DurationVar(&f.progressTimeout, "progress-timeout", mux.DefaultProgressTimeout, "fail a side whose server sends nothing (not even a requested keepalive) for this long on a live connection; the start checkpoint's wait is not counted; negative: off")
	fs.StringVar(&f.standbyConfig, "standby-config", "keep", "backing up a standby: `keep|drop`; keep its standby.signal and primary_conninfo (the copy starts as a standby of the same primary), or drop them (the copy starts as a primary)")
	fs.StringVarP(&f.output, "output", "o", "", "write to `FILE` (FILE.tmp, fsynced, renamed on success) instead of stdout; a name ending in .lz4 gets --compress lz4")
	fs.BoolVar(&f.force, "force", false, "replace an existing -o FILE (and --manifest-out FILE)")
	// -h is --host, as in pg_basebackup: help is --help only.
	fs.Bool("help", false, "help for this command (-h is --host)")
}

func newBackupCmd(a *app) *cobra.Command {
	var f backupFlags
	var habits habitFlags
	cmd := &cobra.Command{
		Use:     "backup [flags]",
		Short:   "write a backup stream to stdout (or -o FILE)",
		Long:    backupLong,
		Example: backupExample,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := habits.check(cmd.Flags()); err != nil {
				return usagef("%v", err)
			}
			if len(args) > 0 {
				return usagef("unexpected argument %q (the stream goes to stdout or -o FILE; see walweave backup --help)", args[0])
			}
			f.compressSet = cmd.Flags().Changed("compress")
			return a.exit(runBackup(a.ctx, &f, a.stdout, a.stderr))
		},
	}
	fs := cmd.Flags()
	f.register(fs)
	fs.StringVarP(&f.incremental, "incremental", "i", "", "take an incremental backup (PostgreSQL 17+, summarize_wal = on) on top of `PRIOR`: its backup_manifest file, or the prior stream (plain, lz4, zstd, gzip)")
	fs.StringVar(&f.manifestOut, "manifest-out", "", "also write the backup's manifest to `FILE` when the backup succeeds (the next --incremental's PRIOR)")
	habits.register(fs)
	return cmd
}

func runBackup(ctx context.Context, f *backupFlags, stdout, stderr io.Writer) int {
	cfg, err := f.config()
	if err != nil {
		fmt.Fprintf(stderr, "walweave backup: %v\n", err)
		return exitUsage
	}
	if _, err := pgconn.ParseConfig(cfg.ConnString); err != nil {
		fmt.Fprintf(stderr, "walweave backup: %s\n", describeParseError(cfg.ConnString, err))
		return exitUsage
	}
	compress, err := parseCompress(f.compress)
	if err != nil {
		fmt.Fprintf(stderr, "walweave backup: %v\n", err)
		return exitUsage
	}
	compress = suffixCompression(f.output, f.compressSet, compress, "walweave backup", stderr)
	if f.manifestOut != "" && !f.force {
		if err := refuseExisting("--manifest-out", f.manifestOut); err != nil {
			fmt.Fprintf(stderr, "walweave backup: %v\n", err)
			return exitUsage
		}
	}
	if f.incremental != "" {
		if cfg.IncrementalFrom, err = loadPriorManifest(f.incremental); err != nil {
			fmt.Fprintf(stderr, "walweave backup: --incremental: %v\n", err)
			return exitUsage
		}
	}
	toFile := f.output != "" && f.output != "-"
	if toFile {
		if err := checkOutputPath(f.output); err != nil {
			fmt.Fprintf(stderr, "walweave backup: %v\n", err)
			return exitUsage
		}
		if !f.force {
			if err := refuseExisting("-o", f.output); err != nil {
				fmt.Fprintf(stderr, "walweave backup: %v\n", err)
				return exitUsage
			}
		}
	}
	level := slog.LevelWarn
	if f.verbose {
		level = slog.LevelDebug
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	var prog *progressPrinter
	if f.progress {
		prog = newProgressPrinter(stderr, isTerminal(stderr), cfg.Checkpoint == mux.CheckpointSpread)
		cfg.Progress = prog.update
	}

	var out io.Writer = stdout
	var file *os.File
	tmp := ""
	if toFile {
		tmp = f.output + ".tmp"
		file, err = os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if errors.Is(err, iofs.ErrExist) {
			fmt.Fprintf(stderr, "walweave backup: %s exists: another backup into %s is running, or one was killed before it could remove it; if no walweave backup is running, remove %s and run again\n", tmp, f.output, tmp)
			return exitFailure
		}
		if err != nil {
			fmt.Fprintf(stderr, "walweave backup: create output: %v\n", err)
			return exitFailure
		}
		out = file
	} else if isTerminal(stdout) {
		fmt.Fprintln(stderr, "walweave: refusing to write a binary backup stream to a terminal; redirect stdout (| zstd > base.tar.zst) or use -o FILE")
		return exitUsage
	}
	counted := &countingWriter{w: out}
	out = counted
	cleanup := func() {
		if file != nil {
			file.Close()
			os.Remove(tmp)
		}
	}

	var cw io.WriteCloser
	if compress >= 0 {
		zw, err := newLZ4Output(out, compress)
		if err != nil {
			cleanup()
			return fail(ctx, stderr, "backup", err)
		}
		cw = zw
		out = zw
	}

	res, err := mux.Backup(ctx, out, cfg)
	if err == nil && cw != nil {
		err = cw.Close()
	}
	if err == nil && file != nil {
		if err = file.Sync(); err == nil {
			if err = file.Close(); err == nil {
				file = nil
				if err = os.Rename(tmp, f.output); err == nil {
					err = syncDir(filepath.Dir(f.output))
				}
			}
		}
	}
	if err == nil && f.manifestOut != "" {
		err = writeManifestOut(f.manifestOut, res.Manifest)
	}
	if prog != nil {
		prog.finish(err == nil)
	}
	if err != nil {
		cleanup()
		return backupFailed(ctx, stderr, err, toFile, counted.n.Load())
	}
	if f.verbose || f.progress {
		traffic := ""
		if c := strings.ToLower(cfg.ServerCompression); c != "" && c != "none" {
			traffic = fmt.Sprintf(" (archives received %s-compressed: %s)", c, humanize.Bytes(res.ArchiveBytesReceived))
		}
		fmt.Fprintf(stderr, "walweave: backup complete: %s..%s timeline %d, %s written%s, %s, %s, %s\n",
			res.StartLSN, res.EndLSN, res.EndTimeline, humanize.Bytes(res.BytesWritten), traffic, plural(res.DataFiles, "data file"), plural(res.WALSegments, "WAL segment"), res.Duration.Round(1e7))
	}
	return exitOK
}

// backupFailed prints why a backup failed (or was interrupted) and what became of the
// output, and returns the exit status.
func backupFailed(ctx context.Context, stderr io.Writer, err error, toFile bool, written int64) int {
	interrupted := ctx.Err() != nil && errors.Is(err, context.Canceled)
	var kept string
	switch {
	case toFile:
		kept = "nothing was kept"
	case written == 0:
		kept = "nothing was written to stdout"
	default:
		kept = fmt.Sprintf("the %s written to stdout are an incomplete, unfinished stream (no manifest, no tar trailer): discard them", humanize.Bytes(written))
	}
	if interrupted {
		fmt.Fprintf(stderr, "walweave: backup interrupted; %s; nothing is left on the server\n", kept)
		return exitInterrupted
	}
	if errors.Is(err, syscall.EPIPE) && !toFile {
		fmt.Fprintf(stderr, "walweave: backup failed: stdout was closed by its reader (broken pipe) after %s; the stream is incomplete, nothing is left on the server\n", humanize.Bytes(written))
		return exitFailure
	}
	fmt.Fprintf(stderr, "walweave: backup failed: %s; %s\n", strings.TrimRight(errorLine(err), ";"), kept)
	return exitFailure
}

// checkOutputPath refuses an -o PATH the backup could not be renamed to at the end: an
// existing directory, or a name ending in "/". It runs before connecting.
func checkOutputPath(p string) error {
	if strings.HasSuffix(p, "/") {
		return fmt.Errorf("-o %s: the output is a file, not a directory: name the file (-o %sbase.tar)", p, p)
	}
	if fi, err := os.Stat(p); err == nil && fi.IsDir() {
		return fmt.Errorf("-o %s: is a directory; the output is a file: name one (-o %s/base.tar)", p, strings.TrimRight(p, "/"))
	}
	if fi, err := os.Stat(filepath.Dir(p)); err != nil {
		return fmt.Errorf("-o %s: %w", p, err)
	} else if !fi.IsDir() {
		return fmt.Errorf("-o %s: %s is not a directory", p, filepath.Dir(p))
	}
	return nil
}

// refuseExisting refuses to replace an existing file (as pg_basebackup refuses a non-empty
// target) unless --force.
func refuseExisting(flag, p string) error {
	if _, err := os.Lstat(p); err == nil {
		return fmt.Errorf("%s %s: the file exists; walweave does not replace it unless --force is given", flag, p)
	}
	return nil
}

// compressedSuffixes are the names of compressed files and what writes them.
var compressedSuffixes = []struct{ suffix, name, pipe string }{
	{".zst", "zstd", "zstd"}, {".zstd", "zstd", "zstd"}, {".gz", "gzip", "gzip"}, {".tgz", "gzip", "gzip"},
	{".xz", "xz", "xz"}, {".bz2", "bzip2", "bzip2"}, {".lz4", "lz4", ""},
}

// suffixCompression is the output compression for -o path: with no --compress, a name ending
// in .lz4 gets lz4 (which walweave writes itself), and a name of another compressed format
// gets a plain tar, said on stderr (walweave writes no zstd, gzip, ...: a pipe does). It
// returns the lz4 level, or -1 for none.
func suffixCompression(path string, compressSet bool, compress int, who string, stderr io.Writer) int {
	if compressSet || path == "" || path == "-" {
		return compress
	}
	base := strings.ReplaceAll(filepath.Base(path), "{node}", "NODE")
	for _, c := range compressedSuffixes {
		if !strings.HasSuffix(base, c.suffix) {
			continue
		}
		if c.name == "lz4" {
			fmt.Fprintf(stderr, "%s: -o %s: compressing with lz4, as the name says (--compress none for a plain tar)\n", who, path)
			return 0
		}
		fmt.Fprintf(stderr, "%s: -o %s: the file will be a plain tar, not %s: walweave compresses with lz4 only (--compress lz4 -o NAME.tar.lz4); for %s pipe the stream: walweave backup ... | %s > %s\n",
			who, path, c.name, c.name, c.pipe, filepath.Base(path))
		return compress
	}
	return compress
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n atomic.Int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	return n, err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// config turns the flags into a mux.Config.
func (f *backupFlags) config() (mux.Config, error) {
	conn, err := connString(f.dbname, f.host, f.port, f.user)
	if err != nil {
		return mux.Config{}, err
	}
	rate, err := parseRate(f.maxRate)
	if err != nil {
		return mux.Config{}, err
	}
	if f.checkpoint != "fast" && f.checkpoint != "spread" {
		return mux.Config{}, fmt.Errorf("invalid checkpoint argument %q, must be \"fast\" or \"spread\"", f.checkpoint)
	}
	if f.jobs == 1 {
		return mux.Config{}, errors.New("--jobs 1: one connection is what BASE_BACKUP already is; leave --jobs out, or give N >= 2 to read the files over N connections")
	}
	if f.jobs >= 2 && f.incremental != "" {
		return mux.Config{}, fmt.Errorf("--jobs %d and --incremental exclude each other: an incremental backup needs BASE_BACKUP (the server's WAL summaries); leave --jobs out", f.jobs)
	}
	if f.ringSlots < 1 {
		return mux.Config{}, fmt.Errorf("--ring-slots must be at least 1")
	}
	cfg := mux.Config{ConnString: conn, Label: f.label, Checkpoint: mux.Checkpoint(f.checkpoint), MaxRate: rate,
		RingSlots: f.ringSlots, SlotName: f.slot, NoVerifyChecksums: f.noVerifyChecksums,
		ManifestChecksums: f.manifestChecksums, WriteRecoveryConf: f.writeRecoveryConf,
		ServerCompression:    f.serverCompress,
		Jobs:                 f.jobs,
		RecoveryConfPassword: f.recoveryPassword,
		TCPUserTimeout:       f.tcpUserTimeout, ProgressTimeout: f.progressTimeout,
		StandbyConfig: mux.StandbyConfig(f.standbyConfig)}
	if f.tcpUserTimeout == 0 || f.progressTimeout == 0 {
		return mux.Config{}, errors.New("--tcp-user-timeout and --progress-timeout must not be 0 (a negative value turns them off)")
	}
	if err := cfg.Validate(); err != nil {
		return mux.Config{}, errors.New(strings.TrimPrefix(err.Error(), "mux: "))
	}
	return cfg, nil
}

// connString combines -d with -h/-p/-U, which override it (as with pg_basebackup).
func connString(dbname, host, port, user string) (string, error) {
	var extra []string
	for _, kv := range [][2]string{{"host", host}, {"port", port}, {"user", user}} {
		if kv[1] != "" {
			extra = append(extra, kv[0]+"='"+strings.ReplaceAll(strings.ReplaceAll(kv[1], `\`, `\\`), "'", `\'`)+"'")
		}
	}
	if len(extra) == 0 {
		return dbname, nil
	}
	if strings.HasPrefix(dbname, "postgres://") || strings.HasPrefix(dbname, "postgresql://") {
		return "", errors.New("-h, -p and -U cannot be combined with a URL connection string; put them in the URL")
	}
	return strings.TrimSpace(dbname + " " + strings.Join(extra, " ")), nil
}

// parseRate reads pg_basebackup's --max-rate: kB/s by default, k or M suffix; returns bytes/s.
func parseRate(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	mult := int64(1024)
	num := s
	switch {
	case strings.HasSuffix(s, "k"):
		num = strings.TrimSuffix(s, "k")
	case strings.HasSuffix(s, "M"):
		num, mult = strings.TrimSuffix(s, "M"), 1024*1024
	}
	n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("invalid transfer rate %q: a positive number of kB/s, optionally with k or M suffix", s)
	}
	bytes := n * mult
	if bytes < 32*1024 || bytes > 1024*1024*1024 {
		return 0, fmt.Errorf("transfer rate %q is out of range: 32k to 1024M", s)
	}
	return bytes, nil
}

// parseCompress returns -1 for none, else the lz4 level (0 = fast).
func parseCompress(s string) (int, error) {
	switch {
	case s == "" || s == "none":
		return -1, nil
	case s == "lz4":
		return 0, nil
	case strings.HasPrefix(s, "lz4:"):
		n, err := strconv.Atoi(strings.TrimPrefix(s, "lz4:"))
		if err != nil || n < 0 || n > 9 {
			return 0, fmt.Errorf("invalid --compress %q: lz4 level must be 0 (fast) to 9", s)
		}
		return n, nil
	}
	return 0, fmt.Errorf("invalid --compress %q: none or lz4[:LEVEL]; for gzip or zstd pipe the stream to the compressor (| zstd > base.tar.zst)", s)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
