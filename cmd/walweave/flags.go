package main

import (
	"errors"
	"fmt"

	"github.com/spf13/pflag"
)

// habitFlags are pg_basebackup flags that walweave backup accepts because they mean what it
// always does (-D -, -Ft, -X stream|fetch, -w), or refuses with a one-line explanation of
// the walweave way (-z, -Z, -W, -T, --no-manifest, -t, and -D DIR, -Fp, -X none). They are
// registered as hidden flags, so that they parse anywhere on the line as pg_basebackup's do
// (-D -, -D-, --pgdata=-, -Ft, -F t, -Xstream, -X s) and stay out of --help.
type habitFlags struct {
	pgdata, format, walMethod string
	noPassword                bool
	gzip, password            bool
	compressLevel             string
	tablespaceMapping         string
	noManifest                bool
	target                    string
}

// register adds the habits to fs, hidden. pg_basebackup's -Z is --compress, which is
// walweave's own flag: -Z gets a long name of its own.
func (h *habitFlags) register(fs *pflag.FlagSet) {
	fs.StringVarP(&h.pgdata, "pgdata", "D", "", "pg_basebackup: only - (stdout) is accepted")
	fs.StringVarP(&h.format, "format", "F", "", "pg_basebackup: only t (tar) is accepted")
	fs.StringVarP(&h.walMethod, "wal-method", "X", "", "pg_basebackup: stream or fetch, both mean what walweave always does")
	fs.BoolVarP(&h.noPassword, "no-password", "w", false, "pg_basebackup: walweave never prompts")
	fs.BoolVarP(&h.gzip, "gzip", "z", false, "pg_basebackup: refused")
	fs.StringVarP(&h.compressLevel, "pg-basebackup-compress", "Z", "", "pg_basebackup: refused")
	fs.BoolVarP(&h.password, "password", "W", false, "pg_basebackup: refused")
	fs.StringVarP(&h.tablespaceMapping, "tablespace-mapping", "T", "", "pg_basebackup: refused (relocate at restore)")
	fs.BoolVar(&h.noManifest, "no-manifest", false, "pg_basebackup: refused")
	fs.StringVarP(&h.target, "target", "t", "", "pg_basebackup: refused")
	for _, name := range []string{"pgdata", "format", "wal-method", "no-password", "gzip", "pg-basebackup-compress", "password", "tablespace-mapping", "no-manifest", "target"} {
		_ = fs.MarkHidden(name)
	}
}

// check returns the one-line explanation for a habit walweave does otherwise, or nil.
func (h *habitFlags) check(fs *pflag.FlagSet) error {
	set := func(name string) bool { return fs.Changed(name) }
	switch {
	case set("pgdata") && h.pgdata != "-":
		return fmt.Errorf("-D %s: walweave backup writes one stream to stdout or -o FILE, never a directory; to get a data directory: walweave backup ... | walweave restore -D %s", h.pgdata, h.pgdata)
	case set("format") && h.format != "t" && h.format != "tar":
		return fmt.Errorf("-F%s: walweave backup writes tar only; extract it with walweave restore -D DIR (or tar -x)", h.format)
	case set("wal-method") && h.walMethod != "stream" && h.walMethod != "s" && h.walMethod != "fetch" && h.walMethod != "f":
		return fmt.Errorf("-X %s: walweave always streams the WAL into the backup (-X stream and -X fetch are accepted and change nothing)", h.walMethod)
	case set("gzip"):
		return errors.New("-z: walweave does not gzip; pipe the stream to a compressor (| zstd > base.tar.zst, | gzip > base.tar.gz) or use --compress lz4")
	case set("pg-basebackup-compress"):
		return errors.New("-Z: walweave does not compress with -Z; pipe the stream to a compressor (| zstd > base.tar.zst) or use --compress lz4 (output) and --server-compress lz4 (traffic)")
	case set("password"):
		return errors.New("-W: walweave does not prompt for a password; use PGPASSWORD, a ~/.pgpass line (database field replication or *) or password= in -d")
	case set("tablespace-mapping"):
		return errors.New("-T: tablespaces travel inside the stream; relocate them when restoring: walweave restore -D DIR -T OLDDIR=NEWDIR")
	case set("no-manifest"):
		return errors.New("--no-manifest: the manifest is part of every walweave stream (walweave verify and restore check against it); it cannot be left out")
	case set("target"):
		return errors.New("-t: walweave writes to stdout or -o FILE only; for a remote target pipe the stream (| aws s3 cp - s3://bucket/base.tar)")
	}
	return nil
}
