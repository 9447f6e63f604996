package pgtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// EnvPG selects the server the tests run against: a major version ("15", "16", "17", "18";
// Debian's /usr/lib/postgresql/<major>/bin first, then the checkout's .cache/pg/<major>/bin
// that scripts/setup-pg-matrix.sh fills), or the path of a bin directory. Unset means 15,
// Debian's (or, without it, the oldest installed 15+ server), so that `make test` is quick and
// the same on every machine whatever else is installed.
const EnvPG = "WALWEAVE_PG"

// DefaultMajor is the server version used when EnvPG is unset.
const DefaultMajor = 15

// MinMajor is the oldest PostgreSQL walweave supports. A server selected below it (14, for the
// refusal tests) starts only through Options.Unsupported; Require skips every other test.
const MinMajor = 15

// Server describes a set of server binaries.
type Server struct {
	BinDir  string
	Major   int    // 17
	Version string // "17.10", as `postgres --version` prints it
	Num     int    // 170010, like server_version_num
}

func (s Server) String() string { return "PostgreSQL " + s.Version }

var (
	selOnce sync.Once
	sel     Server
	selErr  error
)

// Selected returns the server EnvPG selects (see EnvPG).
func Selected() (Server, error) {
	selOnce.Do(func() { sel, selErr = selectServer(os.Getenv(EnvPG)) })
	return sel, selErr
}

// explicit reports whether EnvPG names a server (then a missing one is an error, not a skip).
func explicit() bool { return os.Getenv(EnvPG) != "" }

func selectServer(want string) (Server, error) {
	if strings.Contains(want, "/") {
		s, err := probe(want)
		if err != nil {
			return Server{}, fmt.Errorf("pgtest: %s=%s: %v", EnvPG, want, err)
		}
		return s, nil
	}
	major := DefaultMajor
	if want != "" {
		n, err := strconv.Atoi(want)
		if err != nil {
			return Server{}, fmt.Errorf("pgtest: %s=%q: want a major version (15, 16, 17, 18) or a bin directory", EnvPG, want)
		}
		major = n
	}
	var looked []string
	for _, dir := range append(systemBinDirs(), cacheBinDir(major)) {
		if dir == "" {
			continue
		}
		looked = append(looked, dir)
		if s, err := probe(dir); err == nil && s.Major == major {
			return s, nil
		}
	}
	if want == "" {
		// No 15: take the oldest installed supported server rather than none.
		var found []Server
		for _, dir := range systemBinDirs() {
			if s, err := probe(dir); err == nil && s.Major >= MinMajor {
				found = append(found, s)
			}
		}
		if len(found) > 0 {
			sort.Slice(found, func(i, j int) bool { return found[i].Num < found[j].Num })
			return found[0], nil
		}
		return Server{}, fmt.Errorf("pgtest: no PostgreSQL %d+ server binaries (looked at pg_config --bindir and /usr/lib/postgresql/*/bin); install them with: %s", MinMajor, InstallHint)
	}
	return Server{}, fmt.Errorf("pgtest: %s=%d: no PostgreSQL %d server binaries in %s; fetch them with: scripts/setup-pg-matrix.sh %d",
		EnvPG, major, major, strings.Join(looked, ", "), major)
}

// systemBinDirs lists pg_config's bin directory and /usr/lib/postgresql/*/bin, newest first.
func systemBinDirs() []string {
	var dirs []string
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		dirs = append(dirs, strings.TrimSpace(string(out)))
	}
	glob, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(glob, func(i, j int) bool { return majorOf(glob[i]) > majorOf(glob[j]) })
	return append(dirs, glob...)
}

func majorOf(dir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return n
}

// CacheDir is where scripts/setup-pg-matrix.sh unpacks server builds: .cache/pg in the
// checkout (found from the working directory, which is a package directory under go test).
func CacheDir() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, ".cache", "pg")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

func cacheBinDir(major int) string {
	c := CacheDir()
	if c == "" {
		return ""
	}
	return filepath.Join(c, strconv.Itoa(major), "bin")
}

var versionRE = regexp.MustCompile(`\(PostgreSQL\) (\d+)(?:\.(\d+))?`)

// probe runs `postgres --version` in dir.
func probe(dir string) (Server, error) {
	return probeProgram(dir, "postgres")
}

func probeProgram(dir, program string) (Server, error) {
	out, err := exec.Command(filepath.Join(dir, program), "--version").Output()
	if err != nil {
		return Server{}, err
	}
	m := versionRE.FindSubmatch(out)
	if m == nil {
		return Server{}, fmt.Errorf("unexpected version output %q", out)
	}
	major, _ := strconv.Atoi(string(m[1]))
	minor, _ := strconv.Atoi(string(m[2]))
	s := Server{BinDir: dir, Major: major, Num: major*10000 + minor, Version: string(m[1])}
	if len(m[2]) > 0 {
		s.Version += "." + string(m[2])
	}
	return s, nil
}

// Client returns the newest installed PostgreSQL whose bin directory has the client programs
// (pgbench, psql, ...). Tests do not use it to pick a program: a program that reads WAL, a
// manifest or pg_control must match the server's version, and a client older than the server
// may refuse it; Cluster.ProgramPath and Cluster.Tool pick by what each program can read.
func Client() (Server, error) {
	for _, s := range Installed() {
		if fileExists(filepath.Join(s.BinDir, "pgbench")) {
			return s, nil
		}
	}
	return Server{}, fmt.Errorf("pgtest: no PostgreSQL client programs (pgbench, psql...) in pg_config --bindir or /usr/lib/postgresql/*/bin; install them with: %s", InstallHint)
}

var (
	installedOnce sync.Once
	installedDirs []Server
)

// Installed lists the PostgreSQL bin directories installed on the machine (pg_config --bindir
// and /usr/lib/postgresql/*/bin, not the matrix's server builds in .cache/pg), newest first,
// each with the version of its programs (Debian's 15, the source build of 18 from
// scripts/setup-pg18-src.sh, and 17's client programs alone from scripts/setup-pg17-tools.sh:
// a directory without postgres is listed here for its programs, but selectServer never takes
// it for a server, since it probes postgres).
func Installed() []Server {
	installedOnce.Do(func() {
		seen := map[string]bool{}
		for _, dir := range systemBinDirs() {
			if seen[dir] {
				continue
			}
			seen[dir] = true
			for _, p := range []string{"postgres", "pg_verifybackup", "psql", "pgbench"} {
				if !fileExists(filepath.Join(dir, p)) {
					continue
				}
				if s, err := probeProgram(dir, p); err == nil {
					installedDirs = append(installedDirs, s)
					break
				}
			}
		}
		sort.SliceStable(installedDirs, func(i, j int) bool { return installedDirs[i].Num > installedDirs[j].Num })
	})
	return installedDirs
}

// versionBound are the programs that read a data directory, a backup, pg_control or WAL of
// their own major version only: pg_waldump checks the WAL page magic, pg_verifybackup runs its
// own version's pg_waldump and (manifest version 2) checks pg_control's version,
// pg_combinebackup checks the backups' version. Every other client program (psql, pgbench,
// pg_amcheck, pg_basebackup, pg_receivewal) works against older servers too.
var versionBound = map[string]bool{
	"postgres": true, "initdb": true, "pg_ctl": true, "pg_controldata": true, "pg_resetwal": true,
	"pg_checksums": true, "pg_rewind": true, "pg_upgrade": true, "pg_waldump": true,
	"pg_verifybackup": true, "pg_combinebackup": true, "pg_walsummary": true,
}

// pickTool finds program for the server srv among the installations inst (newest first): the
// server's own, else an installed one of the same major, else (for a program that is not
// version-bound) the oldest installed one newer than the server (a newer client reads older
// servers), else the newest older one (which may refuse the server: pg_basebackup does).
func pickTool(srv Server, program string, inst []Server) (Server, bool) {
	if srv.BinDir != "" && fileExists(filepath.Join(srv.BinDir, program)) {
		return srv, true
	}
	major := srv.Major
	var newer, older []Server
	for _, s := range inst {
		if !fileExists(filepath.Join(s.BinDir, program)) {
			continue
		}
		switch {
		case s.Major == major:
			return s, true
		case s.Major > major:
			newer = append(newer, s)
		default:
			older = append(older, s)
		}
	}
	if versionBound[program] {
		return Server{}, false
	}
	if len(newer) > 0 {
		return newer[len(newer)-1], true // inst is newest first: the last newer one is the oldest
	}
	if len(older) > 0 {
		return older[0], true
	}
	return Server{}, false
}

// BinDir returns the selected server's bin directory and major version (see EnvPG).
func BinDir() (string, int, error) {
	s, err := Selected()
	return s.BinDir, s.Major, err
}

// VersionNum is the server's version as server_version_num (170010 for 17.10).
func (c *Cluster) VersionNum() int { return c.Server.Num }

// ServerLZ4 reports whether the server was built with lz4 (server-side COMPRESSION 'lz4'):
// lz4 is then one of default_toast_compression's values.
func (c *Cluster) ServerLZ4(t testing.TB) bool {
	t.Helper()
	return c.QueryValue(t, "select 'lz4' = any(enumvals) from pg_settings where name = 'default_toast_compression'") == "true"
}

// SkipWithoutServerLZ4 skips a test of server-side lz4 compression on a server built without
// lz4 (the matrix builds), saying so. The default server (Debian's, built with lz4) must run
// those tests: there, under WALWEAVE_REQUIRE_PG=1, a build without lz4 fails the test instead.
func (c *Cluster) SkipWithoutServerLZ4(t testing.TB) {
	t.Helper()
	if c.ServerLZ4(t) {
		return
	}
	msg := fmt.Sprintf("%s in %s is built without lz4, so server-side lz4 compression cannot be tested on it (Debian's PostgreSQL 15, the default server, runs this test)", c.Server, c.BinDir)
	if !explicit() && os.Getenv("WALWEAVE_REQUIRE_PG") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}
