package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/walweave/walweave/restore"
)

const restoreLong = `Extracts a walweave stream (stdin when FILE is - or missing; zstd, gzip and lz4 input is
decompressed) into a new or empty data directory, checking it while it writes (the same
checks as walweave verify). On any problem it removes what it wrote (unless --no-clean) and
exits 1. Several streams (FULL INC1 INC2 ..., in the order taken; one may be -) are an
incremental chain, restored and combined into DIR.

Run as root, it gives the files to --owner USER[:GROUP], else to the owner of DIR (or of
the directory DIR is created in) when that is not root, else to the owner recorded in the
stream (the server's user, "postgres"), as tar -x does as root; it says which.`

const restoreExample = `  zstd -dc base.tar.zst | walweave restore -D /var/lib/postgresql/16/main -T /old/ts=/new/ts
  walweave restore -D /var/lib/postgresql/17/main full.tar inc1.tar inc2.tar`

// mapFlag collects repeated -T OLDDIR=NEWDIR flags.
type mapFlag map[string]string

func (m mapFlag) String() string { return "" }

func (m mapFlag) Type() string { return "OLDDIR=NEWDIR" }

func (m mapFlag) Set(v string) error {
	old, new, err := parseTablespaceMapping(v)
	if err != nil {
		return err
	}
	m[old] = new
	return nil
}

// parseTablespaceMapping parses a -T OLDDIR=NEWDIR argument by pg_basebackup's rule: "\="
// stands for an "=" inside a directory name, so an unescaped "=" separates the two sides and
// a second one (a=b=c) is refused; both sides must be non-empty.
func parseTablespaceMapping(arg string) (oldDir, newDir string, err error) {
	var cur strings.Builder
	var parts []string
	for i := 0; i < len(arg); i++ {
		switch {
		case arg[i] == '\\' && i+1 < len(arg) && arg[i+1] == '=':
			cur.WriteByte('=')
			i++
		case arg[i] == '=':
			parts = append(parts, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(arg[i])
		}
	}
	parts = append(parts, cur.String())
	if len(parts) != 2 || parts[0] == "" || parts[1] == "" {
		return "", "", fmt.Errorf("invalid tablespace mapping %q: must be OLDDIR=NEWDIR (write \\= for an = inside a directory name)", arg)
	}
	return parts[0], parts[1], nil
}

// restoreFlags are walweave restore's flags.
type restoreFlags struct {
	opts                      restore.Options
	standby, recover, verbose bool
	progress                  bool
	owner                     string
	rec                       restore.RecoveryOptions
	walFrom, walFromExec      string
}

func newRestoreCmd(a *app) *cobra.Command {
	f := restoreFlags{opts: restore.Options{TablespaceMap: map[string]string{}}}
	cmd := &cobra.Command{
		Use:     "restore -D DIR [flags] [FILE|-] | FULL INC1 INC2 ...",
		Short:   "check and extract a stream (or a chain) into a data directory",
		Long:    restoreLong,
		Example: restoreExample,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.exit(runRestore(a.ctx, &f, args, a.stdin, a.stdout, a.stderr))
		},
	}
	fs := cmd.Flags()
	fs.StringVarP(&f.opts.Dir, "pgdata", "D", "", "data directory `DIR` to create (must be absent or empty)")
	fs.VarP(mapFlag(f.opts.TablespaceMap), "tablespace-mapping", "T", "relocate a tablespace: OLDDIR=NEWDIR (repeatable)")
	fs.StringVar(&f.owner, "owner", "", "as root: give the files to `USER[:GROUP]` (default: the owner of DIR, else the stream's)")
	fs.BoolVar(&f.opts.NoClean, "no-clean", false, "keep what was written when the restore fails")
	fs.BoolVar(&f.opts.NoSync, "no-sync", false, "do not fsync (faster, not crash-safe)")
	fs.IntVar(&f.opts.Workers, "workers", 4, "`N` goroutines writing files")
	fs.BoolVar(&f.standby, "standby", false, "write standby.signal (with --primary-conninfo: a streaming standby)")
	fs.StringVar(&f.rec.PrimaryConnInfo, "primary-conninfo", "", "primary_conninfo `CONNSTR` for a standby")
	fs.StringVar(&f.rec.PrimarySlotName, "primary-slot", "", "primary_slot_name `SLOT` for a standby")
	fs.BoolVar(&f.recover, "recovery", false, "write recovery.signal (targeted recovery, with the --target-* flags)")
	fs.StringVar(&f.rec.RestoreCommand, "restore-command", "", "restore_command `CMD` for recovery")
	fs.StringVar(&f.walFrom, "wal-from", "", "recovery reads WAL from the walweave archive in `DIR` (restore_command = walweave wal get ...); implies --recovery without --standby")
	fs.StringVar(&f.walFromExec, "wal-from-exec", "", "recovery fetches WAL with `CMD` (walweave wal get --from-exec CMD)")
	fs.StringVar(&f.rec.TargetTime, "target-time", "", "recovery_target_time: `TIME` as YYYY-MM-DD HH:MM:SS[.ffffff] with a zone (+00, +02:00, Z, or a name)")
	fs.StringVar(&f.rec.TargetLSN, "target-lsn", "", "recovery_target_lsn `LSN`")
	fs.StringVar(&f.rec.TargetName, "target-name", "", "recovery_target_name `NAME`")
	fs.StringVar(&f.rec.TargetAction, "target-action", "", "recovery_target_action `ACTION`: pause, promote or shutdown")
	fs.BoolVarP(&f.verbose, "verbose", "v", false, "log what happens on stderr")
	fs.BoolVarP(&f.progress, "progress", "P", false, "show progress on stderr: the stream read so far and the rate (for a chain, which backup)")
	return cmd
}

// parseOwnerFlag reads --owner USER[:GROUP]; giving files to another user needs root.
func parseOwnerFlag(owner string) (*restore.Owner, string, error) {
	o, desc, err := restore.ParseOwner(owner)
	if err != nil {
		return nil, "", fmt.Errorf("--owner: %w", err)
	}
	if os.Geteuid() != 0 && o.UID != os.Geteuid() {
		return nil, "", fmt.Errorf("--owner %s: giving files to another user needs root", owner)
	}
	return &o, desc, nil
}

func runRestore(ctx context.Context, f *restoreFlags, pos []string, stdin io.Reader, stdout, stderr io.Writer) int {
	opts, standby, recover, verbose, owner := f.opts, f.standby, f.recover, f.verbose, f.owner
	rec := f.rec
	if opts.Dir == "" {
		fmt.Fprintln(stderr, "walweave restore: -D DIR is required (see walweave restore --help)")
		return exitUsage
	}
	if standby && recover {
		fmt.Fprintln(stderr, "walweave restore: --standby and --recovery exclude each other")
		return exitUsage
	}
	if f.walFrom != "" || f.walFromExec != "" {
		rc, err := walRestoreCommand(f, rec.RestoreCommand)
		if err != nil {
			fmt.Fprintf(stderr, "walweave restore: %v\n", err)
			return exitUsage
		}
		rec.RestoreCommand = rc
		recover = recover || !standby
	}
	if standby || recover || rec != (restore.RecoveryOptions{}) {
		rec.Standby = standby
		if err := rec.Validate(); err != nil {
			fmt.Fprintf(stderr, "walweave restore: %s\n", strings.TrimPrefix(err.Error(), "restore: "))
			return exitUsage
		}
		opts.Recovery = &rec
	}
	var ownerSpec *restore.Owner
	ownerDesc := ""
	if owner != "" {
		o, desc, err := parseOwnerFlag(owner)
		if err != nil {
			fmt.Fprintf(stderr, "walweave restore: %v\n", err)
			return exitUsage
		}
		ownerSpec, ownerDesc = o, desc+", from --owner"
	}
	opts.Logger = debugLogger(stderr, verbose)
	if len(pos) > 1 {
		opts.Owner = ownerSpec
		return restoreChain(ctx, pos, opts, f.progress, stdin, stdout, stderr)
	}
	in, err := openInput(pos, stdin)
	if err != nil {
		fmt.Fprintf(stderr, "walweave restore: %v\n", err)
		return exitUsage
	}
	defer in.close()
	var src io.Reader = in
	if ownerSpec == nil && os.Geteuid() == 0 {
		p := newPeekReader(in)
		head, _ := p.peek(restore.OwnerHeadSize)
		src = p
		if o, desc, ok := restore.ChooseOwner(opts.Dir, head); ok {
			ownerSpec, ownerDesc = &o, desc
		}
	}
	opts.Owner = ownerSpec
	var prog *readProgress
	if f.progress {
		prog = newReadProgress(stderr, isTerminal(stderr), []string{in.name})
		src = prog.reader(0, src)
	}
	rep, err := restore.Extract(ctx, src, opts)
	if prog != nil {
		prog.finish()
	}
	if err != nil {
		if rep != nil && !rep.OK() {
			fmt.Fprintln(stdout, rep.String())
		}
		if ctx.Err() != nil && errors.Is(err, context.Canceled) {
			kept := "what it wrote was removed"
			if opts.NoClean {
				kept = "what it wrote was kept (--no-clean) and is incomplete"
			}
			fmt.Fprintf(stderr, "walweave: restore interrupted; %s\n", kept)
			return exitInterrupted
		}
		return fail(ctx, stderr, "restore", err)
	}
	code := reportOutcome(rep, "restore", false, stdout, stderr)
	if code == exitOK {
		switch {
		case ownerSpec != nil:
			fmt.Fprintf(stderr, "walweave restore: files owned by %s (--owner USER[:GROUP] to choose)\n", ownerDesc)
		case os.Geteuid() == 0:
			fmt.Fprintf(stderr, "walweave restore: files left owned by root (neither %s nor the stream names another owner); PostgreSQL will not start on them as another user: chown -R, or restore with --owner postgres\n", opts.Dir)
		}
	}
	return code
}

// walRestoreCommand is the restore_command for --wal-from or --wal-from-exec: this walweave
// binary (its absolute path) running wal get.
func walRestoreCommand(f *restoreFlags, given string) (string, error) {
	switch {
	case f.walFrom != "" && f.walFromExec != "":
		return "", errors.New("--wal-from and --wal-from-exec exclude each other")
	case given != "":
		return "", errors.New("--restore-command and --wal-from/--wal-from-exec exclude each other")
	}
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("--wal-from: the path of the walweave binary: %w", err)
	}
	if exe, err = filepath.EvalSymlinks(exe); err != nil {
		return "", fmt.Errorf("--wal-from: the path of the walweave binary: %w", err)
	}
	dir := ""
	if f.walFrom != "" {
		if dir, err = filepath.Abs(f.walFrom); err != nil {
			return "", fmt.Errorf("--wal-from: %w", err)
		}
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			return "", fmt.Errorf("--wal-from %s: not a directory", f.walFrom)
		}
	}
	return restore.WALGetCommand(exe, dir, f.walFromExec), nil
}
