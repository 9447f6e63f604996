package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/walweave/walweave/restore"
)

const restoreUsage = `Usage: walweave restore -D DIR [flags] [FILE|-]
       walweave restore -D DIR [flags] FULL INC1 INC2 ...   (a chain, in the order taken; one may be -)

Extracts a walweave stream (stdin when FILE is - or missing; zstd, gzip and lz4 input is
decompressed) into a new or empty data directory, checking it while it writes (the same
checks as walweave verify). On any problem it removes what it wrote (unless --no-clean) and
exits 1.

Run as root, it gives the files to --owner USER[:GROUP], else to the owner of DIR (or of
the directory DIR is created in) when that is not root, else to the owner recorded in the
stream (the server's user, "postgres"), as tar -x does as root; it says which.

  zstd -dc base.tar.zst | walweave restore -D /var/lib/postgresql/16/main -T /old/ts=/new/ts

Flags:
`

// mapFlag collects repeated -T OLDDIR=NEWDIR flags.
type mapFlag map[string]string

func (m mapFlag) String() string { return "" }

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

func runRestore(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("walweave restore", flag.ContinueOnError)
	opts := restore.Options{TablespaceMap: map[string]string{}}
	var standby, recover, verbose bool
	var owner string
	var rec restore.RecoveryOptions
	strFlag(fs, &opts.Dir, "D", "pgdata", "", "data directory to create (must be absent or empty)")
	fs.Var(mapFlag(opts.TablespaceMap), "T", "relocate a tablespace: OLDDIR=NEWDIR (repeatable)")
	fs.Var(mapFlag(opts.TablespaceMap), "tablespace-mapping", "same as -T")
	fs.StringVar(&owner, "owner", "", "as root: give the files to USER[:GROUP] (default: the owner of DIR, else the stream's)")
	fs.BoolVar(&opts.NoClean, "no-clean", false, "keep what was written when the restore fails")
	fs.BoolVar(&opts.NoSync, "no-sync", false, "do not fsync (faster, not crash-safe)")
	fs.IntVar(&opts.Workers, "workers", 4, "goroutines writing files")
	fs.BoolVar(&standby, "standby", false, "write standby.signal (with --primary-conninfo: a streaming standby)")
	fs.StringVar(&rec.PrimaryConnInfo, "primary-conninfo", "", "primary_conninfo for a standby")
	fs.StringVar(&rec.PrimarySlotName, "primary-slot", "", "primary_slot_name for a standby")
	fs.BoolVar(&recover, "recovery", false, "write recovery.signal (targeted recovery, with the --target-* flags)")
	fs.StringVar(&rec.RestoreCommand, "restore-command", "", "restore_command for recovery")
	fs.StringVar(&rec.TargetTime, "target-time", "", "recovery_target_time: YYYY-MM-DD HH:MM:SS[.ffffff] with a zone (+00, +02:00, Z, or a name)")
	fs.StringVar(&rec.TargetLSN, "target-lsn", "", "recovery_target_lsn")
	fs.StringVar(&rec.TargetName, "target-name", "", "recovery_target_name")
	fs.StringVar(&rec.TargetAction, "target-action", "", "recovery_target_action: pause, promote or shutdown")
	boolFlag(fs, &verbose, "v", "verbose", "log what happens on stderr")
	pos, err := parseFlags(fs, "restore", restoreUsage, args, stdout, stderr)
	if errors.Is(err, errHelp) {
		return exitOK
	}
	if err != nil {
		return exitUsage
	}
	if opts.Dir == "" {
		fmt.Fprintln(stderr, "walweave restore: -D DIR is required (see walweave restore --help)")
		return exitUsage
	}
	if standby && recover {
		fmt.Fprintln(stderr, "walweave restore: --standby and --recovery exclude each other")
		return exitUsage
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
		o, desc, err := restore.ParseOwner(owner)
		if err != nil {
			fmt.Fprintf(stderr, "walweave restore: --owner: %v\n", err)
			return exitUsage
		}
		if os.Geteuid() != 0 && o.UID != os.Geteuid() {
			fmt.Fprintf(stderr, "walweave restore: --owner %s: giving files to another user needs root\n", owner)
			return exitUsage
		}
		ownerSpec, ownerDesc = &o, desc+", from --owner"
	}
	opts.Logger = debugLogger(stderr, verbose)
	if len(pos) > 1 {
		opts.Owner = ownerSpec
		return restoreChain(ctx, pos, opts, stdin, stdout, stderr)
	}
	in, err := openInput(pos, stdin)
	if err != nil {
		fmt.Fprintf(stderr, "walweave restore: %v\n", err)
		return exitUsage
	}
	defer in.close()
	var src io.Reader = in
	if ownerSpec == nil && os.Geteuid() == 0 {
		if o, from, ok := restore.DirOwner(opts.Dir); ok {
			ownerSpec, ownerDesc = &o, restore.DescribeOwner(o)+", the owner of "+from
		} else {
			p := newPeekReader(in)
			head, _ := p.peek(512)
			src = p
			if o, ok := restore.StreamOwner(head); ok {
				ownerSpec, ownerDesc = &o, restore.DescribeOwner(o)+", the owner recorded in the stream"
			}
		}
	}
	opts.Owner = ownerSpec
	rep, err := restore.Extract(ctx, src, opts)
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
