package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/walweave/walweave/restore"
)

const restoreUsage = `Usage: walweave restore -D DIR [flags] [FILE|-]
       walweave restore -D DIR [flags] FULL INC1 INC2 ...   (a chain, in the order taken; one may be -)

Extracts a walweave stream (stdin when FILE is - or missing; lz4 frames are decoded) into a
new or empty data directory, checking it while it writes (the same checks as walweave
verify). On any problem it removes what it wrote (unless --no-clean) and exits 1.

  zstd -dc base.tar.zst | walweave restore -D /var/lib/postgresql/16/main -T /old/ts=/new/ts

Flags:
`

// mapFlag collects repeated -T OLDDIR=NEWDIR flags.
type mapFlag map[string]string

func (m mapFlag) String() string { return "" }

func (m mapFlag) Set(v string) error {
	// As pg_basebackup: "\=" escapes an "=" that is part of a directory name.
	esc := strings.ReplaceAll(v, `\=`, "\x00")
	old, new, ok := strings.Cut(esc, "=")
	if !ok || old == "" || new == "" {
		return fmt.Errorf("invalid tablespace mapping %q: must be OLDDIR=NEWDIR", v)
	}
	m[strings.ReplaceAll(old, "\x00", "=")] = strings.ReplaceAll(new, "\x00", "=")
	return nil
}

func runRestore(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("walweave restore", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(fs.Output(), restoreUsage); fs.PrintDefaults() }
	opts := restore.Options{TablespaceMap: map[string]string{}}
	var standby, recover, verbose bool
	var rec restore.RecoveryOptions
	strFlag(fs, &opts.Dir, "D", "pgdata", "", "data directory to create (must be absent or empty)")
	fs.Var(mapFlag(opts.TablespaceMap), "T", "relocate a tablespace: OLDDIR=NEWDIR (repeatable)")
	fs.Var(mapFlag(opts.TablespaceMap), "tablespace-mapping", "same as -T")
	fs.BoolVar(&opts.NoClean, "no-clean", false, "keep what was written when the restore fails")
	fs.BoolVar(&opts.NoSync, "no-sync", false, "do not fsync (faster, not crash-safe)")
	fs.IntVar(&opts.Workers, "workers", 4, "goroutines writing files")
	fs.BoolVar(&standby, "standby", false, "write standby.signal (with --primary-conninfo: a streaming standby)")
	fs.StringVar(&rec.PrimaryConnInfo, "primary-conninfo", "", "primary_conninfo for a standby")
	fs.StringVar(&rec.PrimarySlotName, "primary-slot", "", "primary_slot_name for a standby")
	fs.BoolVar(&recover, "recovery", false, "write recovery.signal (targeted recovery, with the --target-* flags)")
	fs.StringVar(&rec.RestoreCommand, "restore-command", "", "restore_command for recovery")
	fs.StringVar(&rec.TargetTime, "target-time", "", "recovery_target_time")
	fs.StringVar(&rec.TargetLSN, "target-lsn", "", "recovery_target_lsn")
	fs.StringVar(&rec.TargetName, "target-name", "", "recovery_target_name")
	fs.StringVar(&rec.TargetAction, "target-action", "", "recovery_target_action: pause, promote or shutdown")
	boolFlag(fs, &verbose, "v", "verbose", "log what happens on stderr")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if opts.Dir == "" {
		fmt.Fprintln(stderr, "walweave restore: -D DIR is required")
		return exitUsage
	}
	if standby && recover {
		fmt.Fprintln(stderr, "walweave restore: --standby and --recovery exclude each other")
		return exitUsage
	}
	if standby || recover || rec != (restore.RecoveryOptions{}) {
		rec.Standby = standby
		opts.Recovery = &rec
	}
	opts.Logger = debugLogger(stderr, verbose)
	if fs.NArg() > 1 {
		return restoreChain(ctx, fs.Args(), opts, stdin, stdout, stderr)
	}
	in, closeIn, code := openStreamArg("restore", fs, stdin, stderr)
	if closeIn == nil {
		return code
	}
	defer closeIn()
	rep, err := restore.Extract(ctx, in, opts)
	if err != nil {
		if rep != nil && !rep.OK() {
			fmt.Fprintln(stdout, rep.String())
		}
		return fail(ctx, stderr, "restore", err)
	}
	return reportOutcome(rep, "restore", false, stdout, stderr)
}
