package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// contender is one way of taking a backup.
type contender struct {
	key  string // A, B, C, D, A-lz4, A-srvlz4, A-srvzstd, A-j2, A-j4, A-j8
	desc string // the command line, as shown in the report
	// args returns the program and its arguments; dir is a fresh empty directory the
	// contender may write to (removed after the run).
	args func(e *env, dir string) (prog string, args []string)
	// needsDir asks for the fresh directory.
	needsDir bool
}

// env is what the contenders need to build their commands.
type env struct {
	srv      *server
	walweave string // path of the walweave binary
	baseline string // -baseline: an older walweave binary, run as the X@base contenders
	tmpDir   string // parent of the contenders' directories
	timeout  time.Duration
}

// contenders are all contenders, in round order.
var contenders = []contender{
	{
		key: "A", desc: "walweave backup -c fast > /dev/null",
		args: func(e *env, _ string) (string, []string) {
			return e.walweave, []string{"backup", "-d", e.srv.backupDSN, "-c", "fast"}
		},
	},
	{
		key: "B", desc: "pg_basebackup -Ft -X fetch -c fast -D - > /dev/null",
		args: func(e *env, _ string) (string, []string) {
			return e.srv.bin("pg_basebackup"), []string{"-d", e.srv.backupDSN, "-Ft", "-X", "fetch", "-c", "fast", "-D", "-"}
		},
	},
	{
		key: "C", desc: "pg_basebackup -Ft -X stream -c fast -D tmpdir", needsDir: true,
		args: func(e *env, dir string) (string, []string) {
			return e.srv.bin("pg_basebackup"), []string{"-d", e.srv.backupDSN, "-Ft", "-X", "stream", "-c", "fast", "-D", dir}
		},
	},
	{
		key: "D", desc: "pg_basebackup --target=blackhole -X none -c fast",
		args: func(e *env, _ string) (string, []string) {
			return e.srv.bin("pg_basebackup"), []string{"-d", e.srv.backupDSN, "--target=blackhole", "-X", "none", "-c", "fast"}
		},
	},
	{
		key: "A-lz4", desc: "walweave backup -c fast --compress lz4 > /dev/null",
		args: func(e *env, _ string) (string, []string) {
			return e.walweave, []string{"backup", "-d", e.srv.backupDSN, "-c", "fast", "--compress", "lz4"}
		},
	},
	{
		key: "A-srvlz4", desc: "walweave backup -c fast --server-compress lz4 > /dev/null",
		args: func(e *env, _ string) (string, []string) {
			return e.walweave, []string{"backup", "-d", e.srv.backupDSN, "-c", "fast", "--server-compress", "lz4"}
		},
	},
	{
		key: "A-srvzstd", desc: "walweave backup -c fast --server-compress zstd:level=3,workers=2 > /dev/null",
		args: func(e *env, _ string) (string, []string) {
			return e.walweave, []string{"backup", "-d", e.srv.backupDSN, "-c", "fast", "--server-compress", "zstd:level=3,workers=2"}
		},
	},
	jobsContender(2),
	jobsContender(4),
	jobsContender(8),
}

// jobsContender reads the files over SQL on n connections (--jobs n).
func jobsContender(n int) contender {
	return contender{
		key:  fmt.Sprintf("A-j%d", n),
		desc: fmt.Sprintf("walweave backup -c fast --jobs %d > /dev/null", n),
		args: func(e *env, _ string) (string, []string) {
			return e.walweave, []string{"backup", "-d", e.srv.backupDSN, "-c", "fast", "--jobs", strconv.Itoa(n)}
		},
	}
}

// allKeys lists every contender's key.
func allKeys() []string {
	keys := make([]string, len(contenders))
	for i, c := range contenders {
		keys[i] = c.key
	}
	return keys
}

// parseOnly checks a comma-separated list of contender keys.
func parseOnly(s string) ([]string, error) {
	var keys []string
	for _, k := range strings.Split(s, ",") {
		k = strings.TrimSpace(k)
		if k == "" {
			continue
		}
		if find(k) == nil {
			return nil, fmt.Errorf("-only: unknown contender %q (have %s)", k, strings.Join(allKeys(), ", "))
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("-only: no contender")
	}
	return keys, nil
}

// baseSuffix marks a contender run with the -baseline binary: "A-j4@base" is A-j4's command
// with the older walweave.
const baseSuffix = "@base"

// find returns the contender with the given key, or nil.
func find(key string) *contender {
	if k, ok := strings.CutSuffix(key, baseSuffix); ok && strings.HasPrefix(k, "A") {
		c := find(k)
		if c == nil {
			return nil
		}
		b := *c
		b.key, b.desc = key, c.desc+" (baseline binary)"
		b.args = func(e *env, dir string) (string, []string) {
			prog, args := c.args(e, dir)
			if prog == e.walweave {
				prog = e.baseline
			}
			return prog, args
		}
		return &b
	}
	for i := range contenders {
		if contenders[i].key == key {
			return &contenders[i]
		}
	}
	return nil
}

// usesWalweave reports whether any of the keys needs the walweave binary.
func usesWalweave(keys []string) bool {
	for _, k := range keys {
		if strings.HasPrefix(k, "A") {
			return true
		}
	}
	return false
}

// run runs the contender once and measures it.
func (c *contender) run(ctx context.Context, e *env) sample {
	ctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	dir := ""
	if c.needsDir {
		d, err := os.MkdirTemp(e.tmpDir, "walweave-bench-"+c.key+"-")
		if err != nil {
			return sample{err: err}
		}
		defer os.RemoveAll(d)
		dir = d
	}
	prog, args := c.args(e, dir)
	before := e.srv.cpu()
	smp := measure(ctx, prog, args)
	if before >= 0 {
		// The backends and walsenders of the run exit when it does; give the postmaster a
		// moment to reap them, so that their CPU time is in its children's total.
		time.Sleep(300 * time.Millisecond)
		if after := e.srv.cpu(); after >= 0 {
			smp.srvCPU = after - before
		}
	}
	return smp
}
