package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// errHelp is returned by parseFlags after it printed the usage for --help.
var errHelp = errors.New("help requested")

// parseFlags parses args into fs accepting flags anywhere, before or after the positional
// arguments (as users type them: "walweave restore b.tar -D DIR"), with "--" ending the flags.
// It returns the positional arguments. On --help it prints usage and the flags to stdout and
// returns errHelp; on a bad flag it prints one line and a pointer to --help on stderr.
func parseFlags(fs *flag.FlagSet, cmd, usage string, args []string, stdout, stderr io.Writer) ([]string, error) {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	var pos []string
	for {
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usage)
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			fs.SetOutput(io.Discard)
			return nil, errHelp
		}
		if err != nil {
			fmt.Fprintf(stderr, "walweave %s: %v (see walweave %s --help)\n", cmd, err, cmd)
			return nil, err
		}
		rest := fs.Args()
		consumed := len(args) - len(rest)
		if consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// flagValue returns the value of a short or long flag at args[i] ("-X v", "-Xv", "--long=v",
// "--long v") and how many arguments it spans; ok is false when args[i] is not that flag.
func flagValue(args []string, i int, short, long string) (val string, n int, ok bool) {
	a := args[i]
	next := func() (string, int, bool) {
		if i+1 < len(args) {
			return args[i+1], 2, true
		}
		return "", 1, true
	}
	if short != "" {
		if a == "-"+short {
			return next()
		}
		if strings.HasPrefix(a, "-"+short) && !strings.HasPrefix(a, "--") {
			return strings.TrimPrefix(a, "-"+short), 1, true
		}
	}
	if long != "" {
		for _, p := range []string{"--" + long, "-" + long} {
			if a == p {
				return next()
			}
			if v, found := strings.CutPrefix(a, p+"="); found {
				return v, 1, true
			}
		}
	}
	return "", 0, false
}

// isFlag reports whether args[i] is the boolean flag -short or --long.
func isFlag(a, short, long string) bool {
	return (short != "" && a == "-"+short) || (long != "" && (a == "--"+long || a == "-"+long))
}

// pgBasebackupHabits removes the pg_basebackup flags that mean what walweave backup always
// does (-D -, -Ft, -X stream|fetch, -w) and turns the ones walweave does otherwise into a
// one-line explanation (returned as an error). Arguments after "--" are left alone.
func pgBasebackupHabits(fs *flag.FlagSet, args []string) ([]string, error) {
	var out []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(out, args[i:]...), nil
		}
		// One of walweave's own flags: keep it, and its value when it takes one.
		if name := strings.TrimLeft(a, "-"); strings.HasPrefix(a, "-") && name != "" && !strings.Contains(name, "=") {
			if f := fs.Lookup(name); f != nil {
				out = append(out, a)
				if b, ok := f.Value.(interface{ IsBoolFlag() bool }); (!ok || !b.IsBoolFlag()) && i+1 < len(args) {
					out = append(out, args[i+1])
					i++
				}
				continue
			}
		}
		if v, n, ok := flagValue(args, i, "D", "pgdata"); ok {
			if v != "-" {
				return nil, fmt.Errorf("-D %s: walweave backup writes one stream to stdout or -o FILE, never a directory; to get a data directory: walweave backup ... | walweave restore -D %s", v, v)
			}
			i += n - 1
			continue
		}
		if v, n, ok := flagValue(args, i, "F", "format"); ok {
			if v != "t" && v != "tar" {
				return nil, fmt.Errorf("-F%s: walweave backup writes tar only; extract it with walweave restore -D DIR (or tar -x)", v)
			}
			i += n - 1
			continue
		}
		if v, n, ok := flagValue(args, i, "X", "wal-method"); ok {
			switch v {
			case "stream", "s", "fetch", "f":
			default:
				return nil, fmt.Errorf("-X %s: walweave always streams the WAL into the backup (-X stream and -X fetch are accepted and change nothing)", v)
			}
			i += n - 1
			continue
		}
		if isFlag(a, "w", "no-password") {
			continue // walweave never prompts
		}
		switch {
		case isFlag(a, "z", "gzip"):
			return nil, errors.New("-z: walweave does not gzip; pipe the stream to a compressor (| zstd > base.tar.zst, | gzip > base.tar.gz) or use --compress lz4")
		case func() bool { _, _, ok := flagValue(args, i, "Z", ""); return ok }():
			return nil, errors.New("-Z: walweave does not compress with -Z; pipe the stream to a compressor (| zstd > base.tar.zst) or use --compress lz4 (output) and --server-compress lz4 (traffic)")
		case isFlag(a, "W", "password"):
			return nil, errors.New("-W: walweave does not prompt for a password; use PGPASSWORD, a ~/.pgpass line (database field replication or *) or password= in -d")
		case func() bool { _, _, ok := flagValue(args, i, "T", "tablespace-mapping"); return ok }():
			return nil, errors.New("-T: tablespaces travel inside the stream; relocate them when restoring: walweave restore -D DIR -T OLDDIR=NEWDIR")
		case isFlag(a, "", "no-manifest"):
			return nil, errors.New("--no-manifest: the manifest is part of every walweave stream (walweave verify and restore check against it); it cannot be left out")
		case func() bool { _, _, ok := flagValue(args, i, "t", "target"); return ok }():
			return nil, errors.New("-t: walweave writes to stdout or -o FILE only; for a remote target pipe the stream (| aws s3 cp - s3://bucket/base.tar)")
		}
		out = append(out, a)
	}
	return out, nil
}
