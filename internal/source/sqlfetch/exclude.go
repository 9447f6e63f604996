package sqlfetch

import (
	"path"
	"strings"
)

// BASE_BACKUP's exclusions (basebackup.c, REL_15_STABLE to REL_18_STABLE: the same lists in
// all four; 17 adds pg_wal/summaries/ as an empty directory). A file list built from the
// server must apply exactly these, so that the stream holds what BASE_BACKUP's would.

// excludeDirContents are directories sent empty, at any depth (matched by name).
var excludeDirContents = map[string]bool{
	"pg_stat_tmp":  true, // PG_STAT_TMP_DIR
	"pg_replslot":  true,
	"pg_dynshmem":  true, // PG_DYNSHMEM_DIR
	"pg_notify":    true,
	"pg_serial":    true,
	"pg_snapshots": true,
	"pg_subtrans":  true,
}

// excludeFiles are files never sent, at any depth (matched by name).
var excludeFiles = map[string]bool{
	"postgresql.auto.conf.tmp": true,
	"current_logfiles.tmp":     true,
	"backup_label":             true,
	"tablespace_map":           true,
	"backup_manifest":          true,
	"postmaster.pid":           true,
	"postmaster.opts":          true,
	".DS_Store":                true, // newer minors of every branch
}

// excludePrefixes are name prefixes never sent.
var excludePrefixes = []string{
	"pg_internal.init", // RELCACHE_INIT_FILENAME, and its temporary files
	"pgsql_tmp",        // PG_TEMP_FILE_PREFIX: temporary files and directories
}

func excludedName(name string) bool {
	if excludeFiles[name] {
		return true
	}
	for _, p := range excludePrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// isDBDir reports whether dir (relative to its root, the data directory or a tablespace's
// directory) is a database directory: all digits, under base/ or a tablespace's version
// directory (PG_<major>_<catversion>).
func isDBDir(dir string, inTablespace bool) bool {
	base := path.Base(dir)
	if base == "" || strings.Trim(base, "0123456789") != "" {
		return false
	}
	parent := path.Dir(dir)
	if inTablespace {
		return strings.HasPrefix(parent, "PG_") && !strings.Contains(parent, "/")
	}
	return parent == "base"
}

// relFileName parses a relation file name as parse_filename_for_nontemp_relation does:
// <relnumber>[_<fork>][.<segno>], fork one of fsm, vm, init. It returns the relnumber and
// the fork ("" for main).
func relFileName(name string) (rel, fork string, ok bool) {
	i := 0
	for i < len(name) && name[i] >= '0' && name[i] <= '9' {
		i++
	}
	if i == 0 || i > 10 {
		return "", "", false
	}
	rel, rest := name[:i], name[i:]
	if strings.HasPrefix(rest, "_") {
		j := 1
		for j < len(rest) && rest[j] >= 'a' && rest[j] <= 'z' {
			j++
		}
		fork = rest[1:j]
		if fork != "fsm" && fork != "vm" && fork != "init" {
			return "", "", false
		}
		rest = rest[j:]
	}
	if strings.HasPrefix(rest, ".") {
		seg := rest[1:]
		if seg == "" || strings.Trim(seg, "0123456789") != "" || len(seg) > 10 {
			return "", "", false
		}
		rest = ""
	}
	return rel, fork, rest == ""
}

// tempRelName reports looks_like_temp_rel_name: t<backend>_<relnumber>[_<fork>][.<segno>].
func tempRelName(name string) bool {
	if !strings.HasPrefix(name, "t") {
		return false
	}
	i := 1
	for i < len(name) && name[i] >= '0' && name[i] <= '9' {
		i++
	}
	if i == 1 || i >= len(name) || name[i] != '_' {
		return false
	}
	_, _, ok := relFileName(name[i+1:])
	return ok
}

// entry is one member of the backup as listed on the server.
type entry struct {
	rel   string // relative to its root (the data directory or the tablespace's directory)
	dir   bool
	link  string // symlink target (pg_tblspc/<oid> of a tablespace)
	size  int64
	mtime int64 // Unix seconds
}

// filter applies BASE_BACKUP's rules to a sorted listing of one root (parents before their
// contents) and returns what is sent, in order. Directories whose contents are not sent are
// in the listing without their contents already (the walk does not descend into them).
// inTablespace selects the tablespace rules for database directories.
func filter(list []entry, inTablespace bool) []entry {
	// Unlogged relations: every fork but _init of a relation with an _init fork.
	initForks := map[string]bool{}
	for _, e := range list {
		if e.dir {
			continue
		}
		if rel, fork, ok := relFileName(path.Base(e.rel)); ok && fork == "init" && isDBDir(path.Dir(e.rel), inTablespace) {
			initForks[path.Dir(e.rel)+"/"+rel] = true
		}
	}
	var out []entry
	skipped := map[string]bool{} // directories left out: their contents too
	for _, e := range list {
		dir := path.Dir(e.rel)
		if skipped[dir] {
			if e.dir {
				skipped[e.rel] = true
			}
			continue
		}
		name := path.Base(e.rel)
		if excludedName(name) {
			if e.dir {
				skipped[e.rel] = true
			}
			continue
		}
		if !e.dir && isDBDir(dir, inTablespace) {
			if tempRelName(name) {
				continue
			}
			if rel, fork, ok := relFileName(name); ok && fork != "init" && initForks[dir+"/"+rel] {
				continue
			}
		}
		if !inTablespace && e.rel == "global/pg_control" {
			continue // read last
		}
		out = append(out, e)
	}
	return out
}
