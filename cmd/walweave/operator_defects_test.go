package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/walweave/walweave/fleet"
	"github.com/walweave/walweave/internal/pgtest"
	fixture "github.com/walweave/walweave/internal/verifytest"
	"github.com/walweave/walweave/pgformat"
)

const nowhere = "host=127.0.0.1 port=1 user=x"

// fleetBackup runs walweave fleet backup of the clusters as nodes a, b, ... into dir and
// fails the test unless it succeeds.
func fleetBackup(t *testing.T, cs []*pgtest.Cluster, dir string, extra ...string) {
	t.Helper()
	args := []string{"fleet", "backup", "-c", "fast", "-o", filepath.Join(dir, "{node}.tar")}
	for i, c := range cs {
		args = append(args, "--node", fmt.Sprintf("%c=%s", 'a'+i, c.DSN()))
	}
	if _, stderr, code := ww(t, nil, nil, append(args, extra...)...); code != 0 {
		t.Fatalf("fleet backup: exit %d:\n%s", code, stderr)
	}
}

// rootOwnedBase is a root-owned directory (0755) the server user can traverse: a restore
// into it as root finds no owner there and must take the stream's.
func rootOwnedBase(t *testing.T) string {
	t.Helper()
	base, err := os.MkdirTemp("", "walweave-fleet-owner-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	return base
}

// Item 2: fleet restore run as root gives every node's files to the owner recorded in its
// stream (postgres), as walweave restore does, says so, and PostgreSQL starts on a node's
// directory as postgres; --owner chooses another owner.
func TestFleetRestoreAsRootGivesFilesToTheStreamOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test checks what a restore run as root does: run it as root (CI does)")
	}
	cs := fleetClusters(t, 2)
	dir := t.TempDir()
	fleetBackup(t, cs, dir)
	pg, err := user.Lookup("postgres")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(pg.Uid)
	base := rootOwnedBase(t)
	_, stderr, code := ww(t, nil, nil, "fleet", "restore", "--node", "a", "--node", "b", "--from", filepath.Join(dir, "{node}.tar"),
		"-D", filepath.Join(base, "{node}"), "--no-sync")
	if code != 0 {
		t.Fatalf("fleet restore: exit %d:\n%s", code, stderr)
	}
	for _, n := range []string{"a", "b"} {
		if !strings.Contains(stderr, n+": files owned by postgres:") || !strings.Contains(stderr, "recorded in the stream") {
			t.Errorf("stderr does not say who owns node %s's files:\n%s", n, stderr)
		}
		checkOwner(t, filepath.Join(base, n), uid)
	}
	// PostgreSQL, run as postgres with no chown, starts on node a's directory.
	sock := filepath.Join(base, "sock")
	if err := os.Mkdir(sock, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := pgtest.Chown(sock); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	data, logf := filepath.Join(base, "a"), filepath.Join(sock, "log")
	if out, err := cs[0].Run(ctx, "pg_ctl", "-D", data, "-w", "-t", "60", "-l", logf, "-o", "-p "+strconv.Itoa(cs[0].Port+1000)+" -k "+sock+" -c listen_addresses=", "start"); err != nil {
		b, _ := os.ReadFile(logf)
		t.Fatalf("pg_ctl start as postgres: %v %s\n%s", err, out, b)
	}
	if out, err := cs[0].Run(ctx, "pg_ctl", "-D", data, "-w", "-m", "fast", "stop"); err != nil {
		t.Fatalf("pg_ctl stop: %v %s", err, out)
	}

	base2 := rootOwnedBase(t)
	if _, stderr, code := ww(t, nil, nil, "fleet", "restore", "--node", "a", "--from", filepath.Join(dir, "{node}.tar"),
		"-D", filepath.Join(base2, "{node}"), "--no-sync", "--owner", "nobody"); code != 0 || !strings.Contains(stderr, "a: files owned by nobody:") {
		t.Fatalf("--owner nobody: exit %d:\n%s", code, stderr)
	}
	nobody, _ := user.Lookup("nobody")
	nuid, _ := strconv.Atoi(nobody.Uid)
	checkOwner(t, filepath.Join(base2, "a"), nuid)
}

// Item 3: --only without --independent is a usage error (it would write a new restore point
// for some nodes only); fleet restore of streams with different restore points fails (exit
// 1, what it wrote removed) unless --independent.
func TestFleetMixedRestorePointsRefused(t *testing.T) {
	_, stderr, code := ww(t, nil, nil, "fleet", "backup", "--node", "a="+nowhere, "--node", "b="+nowhere, "--only", "b", "-o", "/tmp/{node}.tar")
	if code != 2 || !strings.Contains(stderr, "--only needs --independent") || strings.Contains(stderr, "connect") {
		t.Fatalf("--only without --independent: exit %d, %q", code, stderr)
	}
	oneLineErr(t, stderr)

	cs := fleetClusters(t, 2)
	one, two := t.TempDir(), t.TempDir()
	fleetBackup(t, cs, one, "--restore-point", "first")
	fleetBackup(t, cs, two, "--restore-point", "second")
	mixed := fmt.Sprintf("if [ $WALWEAVE_NODE = a ]; then cat %s/a.tar; else cat %s/b.tar; fi", one, two)
	root := t.TempDir()
	_, stderr, code = ww(t, nil, nil, "fleet", "restore", "--node", "a", "--node", "b", "--from-exec", mixed, "-D", filepath.Join(root, "{node}"), "--no-sync")
	if code != 1 || !strings.Contains(stderr, "different restore points (first, second)") || !strings.Contains(stderr, "--independent") {
		t.Fatalf("mixed restore points: exit %d:\n%s", code, stderr)
	}
	for _, n := range []string{"a", "b"} {
		if ents, _ := os.ReadDir(filepath.Join(root, n)); len(ents) != 0 {
			t.Errorf("node %s: %d entries left after the refusal", n, len(ents))
		}
	}
	root2 := t.TempDir()
	_, stderr, code = ww(t, nil, nil, "fleet", "restore", "--node", "a", "--node", "b", "--from-exec", mixed, "-D", filepath.Join(root2, "{node}"), "--no-sync", "--independent")
	if code != 0 || !strings.Contains(stderr, "fleet restore complete: 2 nodes") {
		t.Fatalf("mixed restore points with --independent: exit %d:\n%s", code, stderr)
	}
	// The streams of one fleet backup restore with no word about it.
	root3 := t.TempDir()
	_, stderr, code = ww(t, nil, nil, "fleet", "restore", "--node", "a", "--node", "b", "--from", filepath.Join(two, "{node}.tar"), "-D", filepath.Join(root3, "{node}"), "--no-sync")
	if code != 0 || strings.Contains(stderr, "different restore points") {
		t.Fatalf("one fleet backup: exit %d:\n%s", code, stderr)
	}
}

// Item 4: a failing --exec command is reported with its exit status and its last line on
// stderr, whether it exits before reading the stream or after; a failing --from-exec too.
func TestFleetExecFailureReportsExitStatus(t *testing.T) {
	cs := fleetClusters(t, 1)
	for _, c := range []struct{ cmd, want string }{
		{`echo "upload refused: bucket full" >&2; exit 3`, `exited with status 3 (its last line on stderr: "upload refused: bucket full")`},
		{`cat > /dev/null; echo "checksum mismatch" >&2; exit 4`, `exited with status 4 (its last line on stderr: "checksum mismatch")`},
	} {
		_, stderr, code := ww(t, nil, nil, "fleet", "backup", "--node", "a="+cs[0].DSN(), "-c", "fast", "--exec", c.cmd)
		if code != 1 || !strings.Contains(stderr, c.want) || strings.Contains(stderr, "file already closed") || strings.Contains(stderr, "broken pipe") {
			t.Errorf("--exec %q: exit %d, stderr:\n%s\nwant %q", c.cmd, code, stderr, c.want)
		}
	}
	// fleet restore --from-exec alike.
	_, stderr, code := ww(t, nil, nil, "fleet", "restore", "--node", "a", "--from-exec", `echo "no such object" >&2; exit 5`, "-D", filepath.Join(t.TempDir(), "{node}"))
	if code != 1 || !strings.Contains(stderr, `exited with status 5 (its last line on stderr: "no such object")`) {
		t.Errorf("--from-exec failing: exit %d, stderr:\n%s", code, stderr)
	}
}

// Item 5: fleet usage errors are usage errors: a fence on a node that is not in the fleet
// (exit 2, before connecting); the rerun advice after an independent failure writes its
// report to a new name, keeping the failed run's; fleet is in walweave --help and in the
// unknown command message.
func TestFleetUsageErrorsAndRerunReportName(t *testing.T) {
	_, stderr, code := ww(t, nil, nil, "fleet", "backup", "--node", "a="+nowhere, "--node", "b="+nowhere, "--fence", "advisory:7@c", "-o", "/tmp/{node}.tar")
	if code != 2 || !strings.Contains(stderr, `no node "c" in the fleet`) || strings.Contains(stderr, "connect") {
		t.Fatalf("fence on an unknown node: exit %d, %q", code, stderr)
	}
	oneLineErr(t, stderr)
	if stdout, _, code := ww(t, nil, nil, "--help"); code != 0 || !regexp.MustCompile(`(?m)^  fleet `).MatchString(stdout) {
		t.Errorf("walweave --help does not list fleet:\n%s", stdout)
	}
	if _, stderr, code := ww(t, nil, nil, "flet"); code != 2 || !strings.Contains(stderr, "fleet") {
		t.Errorf("unknown command: exit %d, %q does not name fleet", code, stderr)
	}

	cs := fleetClusters(t, 1)
	dir, reports := t.TempDir(), t.TempDir()
	report := filepath.Join(reports, "fleet.json")
	_, stderr, code = ww(t, nil, nil, "fleet", "backup", "--node", "a="+cs[0].DSN(), "--node", "b="+nowhere, "--independent", "-c", "fast",
		"-o", filepath.Join(dir, "{node}.tar"), "--report", report)
	if code != 1 {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	rerun := filepath.Join(reports, "fleet.rerun.json")
	if !strings.Contains(stderr, "--report "+rerun+" --only b") {
		t.Fatalf("the rerun advice does not write a new report:\n%s", stderr)
	}
	var rep fleet.Report
	if b, err := os.ReadFile(report); err != nil || json.Unmarshal(b, &rep) != nil || rep.OK || len(rep.Nodes) != 2 {
		t.Fatalf("the failed run's report: %v %+v", err, rep)
	}
}

// Item 6: a chain in the wrong order, with a link missing, starting with an incremental
// backup, or mixing clusters or major versions is refused before anything is written, in verify's words, with no INCOMPLETE
// report on stdout and no library name in the message.
func TestChainRestoreRefusedBeforeWriting(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, c *fixture.Chain17) string {
		s, err := c.Stream()
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, s.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	full := &fixture.Chain17{Start: 0x2000028}
	full.Add("base/5/16384", fixture.Blocks("abc"))
	inc1 := &fixture.Chain17{Start: 0x4000028, From: 0x2000028}
	inc1.Add("base/5/INCREMENTAL.16384", fixture.IncrementalFile(3, []uint32{1}, "B"))
	inc2 := &fixture.Chain17{Start: 0x6000028, From: 0x4000028}
	inc2.Add("base/5/INCREMENTAL.16384", fixture.IncrementalFile(3, []uint32{2}, "C"))
	f, i1, i2 := write("full.tar", full), write("inc1.tar", inc1), write("inc2.tar", inc2)
	// The same backups with the origin walweave writes on backup_label: the full backup's
	// cluster, an incremental of another cluster and one of another major version (their
	// LSNs link, so only the origin tells).
	origin := pgformat.BackupOrigin{SystemID: 7450000000000000001, ServerVersion: 170006}
	full.Origin = origin
	inc1.Origin = pgformat.BackupOrigin{SystemID: 7450000000000000002, ServerVersion: 170006}
	fo, i1Other := write("full-origin.tar", full), write("inc1-other-cluster.tar", inc1)
	inc1.Origin = pgformat.BackupOrigin{SystemID: origin.SystemID, ServerVersion: 180001}
	i1Major := write("inc1-pg18.tar", inc1)
	for _, c := range []struct {
		name  string
		files []string
		want  string
	}{
		{"wrong order", []string{f, i2, i1}, "inc2.tar was taken from " + i1 + " (INCREMENTAL FROM 0/4000028 on timeline 1), not from " + f + " (which starts at 0/2000028 on timeline 1): give the backups in the order they were taken"},
		{"missing link", []string{f, i2}, "inc2.tar does not follow " + f},
		{"incremental first", []string{i1, i2}, "inc1.tar is an incremental backup (from 0/2000028 on timeline 1); a chain starts with a full backup"},
		{"another cluster", []string{fo, i1Other}, i1Other + " is a backup of another cluster (system identifier 7450000000000000002; " + fo + "'s is 7450000000000000001)"},
		{"another major version", []string{fo, i1Major}, i1Major + " is a backup of PostgreSQL 18, " + fo + " of PostgreSQL 17"},
	} {
		target := filepath.Join(t.TempDir(), "data")
		stdout, stderr, code := ww(t, nil, nil, append([]string{"restore", "-D", target}, c.files...)...)
		if code != 1 || !strings.Contains(stderr, c.want) || !strings.Contains(stderr, "nothing was kept") {
			t.Errorf("%s: exit %d, stderr %q; want exit 1 with %q", c.name, code, stderr, c.want)
		}
		oneLineErr(t, stderr)
		if strings.Contains(stdout, "INCOMPLETE") || regexp.MustCompile(`\b(restore|verify)\.[A-Z]`).MatchString(stderr+stdout) {
			t.Errorf("%s: stdout %q, stderr %q", c.name, stdout, stderr)
		}
		if _, err := os.Stat(target); !os.IsNotExist(err) {
			t.Errorf("%s: %s was created before the refusal", c.name, target)
		}
	}
}

// Item 7: restore -P shows progress on stderr: the stream read and the rate, and for a
// chain which backup is being read.
func TestRestoreProgress(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{})
	c.PgbenchInit(t, 1)
	tarPath := filepath.Join(t.TempDir(), "b.tar")
	if _, stderr, code := ww(t, nil, nil, "backup", "-d", c.DSN(), "-c", "fast", "-o", tarPath); code != 0 {
		t.Fatalf("backup: exit %d: %s", code, stderr)
	}
	_, stderr, code := ww(t, nil, nil, "restore", "-P", "--no-sync", "-D", filepath.Join(t.TempDir(), "r"), tarPath)
	if code != 0 || !regexp.MustCompile(`walweave: restore read: [0-9.]+ [KMG]iB of stream read, [0-9.]+ [KMG]?i?B/s`).MatchString(stderr) {
		t.Fatalf("restore -P: exit %d, stderr:\n%s", code, stderr)
	}
	var b bytes.Buffer
	p := newReadProgress(&b, false, []string{"full.tar", "inc1.tar"})
	r := p.reader(1, strings.NewReader(strings.Repeat("x", 3000)))
	if _, err := r.Read(make([]byte, 2048)); err != nil {
		t.Fatal(err)
	}
	p.finish()
	if !strings.Contains(b.String(), "2.0 KiB of stream read") || !strings.Contains(b.String(), "backup 2 of 2 (inc1.tar)") {
		t.Fatalf("chain progress line: %q", b.String())
	}
}

// Item 8: -o FILE and --manifest-out FILE refuse an existing file unless --force (before
// connecting); -o NAME.tar.lz4 without --compress writes lz4, -o NAME.tar.zst says the file
// will be a plain tar and is one.
func TestOutputRefusesExistingFileAndSuffix(t *testing.T) {
	dir := t.TempDir()
	existing := filepath.Join(dir, "b.tar")
	if err := os.WriteFile(existing, []byte("an earlier backup"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, flag := range []string{"-o", "--manifest-out"} {
		args := []string{"backup", "-d", nowhere, flag, existing}
		if flag == "--manifest-out" {
			args = append(args, "-o", filepath.Join(dir, "new.tar"))
		}
		_, stderr, code := ww(t, nil, nil, args...)
		if code != 2 || !strings.Contains(stderr, "the file exists") || !strings.Contains(stderr, "--force") || strings.Contains(stderr, "connect") {
			t.Errorf("%s existing: exit %d, %q", flag, code, stderr)
		}
		oneLineErr(t, stderr)
		// With --force it goes on (to the unreachable server).
		if _, stderr, code := ww(t, nil, nil, append(args, "--force")...); code != 1 || !strings.Contains(stderr, "cannot connect") {
			t.Errorf("%s existing --force: exit %d, %q", flag, code, stderr)
		}
	}
	// fleet backup -o alike, per node.
	_, stderr, code := ww(t, nil, nil, "fleet", "backup", "--node", "b="+nowhere, "-o", filepath.Join(dir, "{node}.tar"))
	if code != 2 || !strings.Contains(stderr, "the file exists") || strings.Contains(stderr, "connect") {
		t.Errorf("fleet -o existing: exit %d, %q", code, stderr)
	}
	if b, _ := os.ReadFile(existing); string(b) != "an earlier backup" {
		t.Fatal("the existing file was changed")
	}

	c := pgtest.Start(t, pgtest.Options{})
	lz := filepath.Join(dir, "b.tar.lz4")
	_, stderr, code = ww(t, nil, nil, "backup", "-d", c.DSN(), "-c", "fast", "-o", lz)
	if code != 0 || !strings.Contains(stderr, "compressing with lz4") {
		t.Fatalf("-o .lz4: exit %d, %q", code, stderr)
	}
	if b, _ := os.ReadFile(lz); len(b) < 4 || string(b[:4]) != "\x04\x22\x4d\x18" {
		t.Fatal("-o NAME.tar.lz4 is not an lz4 frame")
	}
	zst := filepath.Join(dir, "b.tar.zst")
	_, stderr, code = ww(t, nil, nil, "backup", "-d", c.DSN(), "-c", "fast", "-o", zst)
	if code != 0 || !strings.Contains(stderr, "the file will be a plain tar, not zstd") {
		t.Fatalf("-o .zst: exit %d, %q", code, stderr)
	}
	if b, _ := os.ReadFile(zst); len(b) < 262 || string(b[257:262]) != "ustar" {
		t.Fatal("-o NAME.tar.zst is not the plain tar the message says")
	}
	if _, stderr, code := ww(t, nil, nil, "verify", zst); code != 0 {
		t.Fatalf("verify: exit %d, %s", code, stderr)
	}
}

// Item 9: --jobs 1 and --jobs with --incremental are usage errors (before connecting); the
// GRANT hint of a role that may not read files over SQL ends with one ";".
func TestJobsEdgesAreUsageErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--jobs", "1"}, "--jobs 1: one connection is what BASE_BACKUP already is"},
		{[]string{"--jobs", "2", "--incremental", "/nonexistent/prior.manifest"}, "--jobs 2 and --incremental exclude each other"},
	} {
		_, stderr, code := ww(t, nil, nil, append([]string{"backup", "-d", nowhere, "-o", filepath.Join(t.TempDir(), "b.tar")}, c.args...)...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, %q", c.args, code, stderr)
		}
		oneLineErr(t, stderr)
	}
	c := pgtest.Start(t, pgtest.Options{})
	_, stderr, code := ww(t, nil, nil, "backup", "-d", c.DSN(), "-c", "fast", "--jobs", "2", "-o", filepath.Join(t.TempDir(), "b.tar"))
	if code != 1 || !strings.Contains(stderr, "GRANT EXECUTE ON FUNCTION") || strings.Contains(stderr, ";;") {
		t.Fatalf("--jobs 2 without the grants: exit %d, %q", code, stderr)
	}
}

// Item 10: -i is --incremental, as in pg_basebackup 17.
func TestIncrementalShortFlag(t *testing.T) {
	_, stderr, code := ww(t, nil, nil, "backup", "-d", nowhere, "-o", filepath.Join(t.TempDir(), "b.tar"), "-i", "/nonexistent/prior.manifest")
	if code != 2 || !strings.Contains(stderr, "--incremental: open /nonexistent/prior.manifest") {
		t.Fatalf("-i PRIOR: exit %d, %q", code, stderr)
	}
	if stdout, _, _ := ww(t, nil, nil, "backup", "--help"); !strings.Contains(stdout, "-i, --incremental PRIOR") {
		t.Fatalf("backup --help does not show -i:\n%s", stdout)
	}
}

// Item 11: verify from a pipe with SHA manifest checksums does not say OK: it says what was
// checked and that the SHA checksums were not, exit 1; with --allow-unverified exit 0.
func TestVerifyPipeSHASaysUnverified(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{})
	tarPath := filepath.Join(t.TempDir(), "b.tar")
	if _, stderr, code := ww(t, nil, nil, "backup", "-d", c.DSN(), "-c", "fast", "--manifest-checksums", "SHA256", "-o", tarPath); code != 0 {
		t.Fatalf("backup: exit %d: %s", code, stderr)
	}
	pipe := func() *bytes.Reader { b, _ := os.ReadFile(tarPath); return bytes.NewReader(b) }
	stdout, stderr, code := ww(t, nil, struct{ *bytes.Reader }{pipe()}, "verify")
	if code != 1 || strings.HasPrefix(stdout, "OK") || !strings.HasPrefix(stdout, "UNVERIFIED: ") ||
		!regexp.MustCompile(`sizes and WAL CRCs checked, SHA256 checksums of \d+ files not verified \(give --checksum-algorithm SHA256, or the FILE rather than a pipe\)`).MatchString(stdout) {
		t.Fatalf("pipe: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	oneLineErr(t, stderr)
	stdout, stderr, code = ww(t, nil, struct{ *bytes.Reader }{pipe()}, "verify", "--allow-unverified")
	if code != 0 || !strings.HasPrefix(stdout, "OK (sizes only, --allow-unverified): ") || stderr != "" {
		t.Fatalf("pipe --allow-unverified: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}

	// A chain with one stream from stdin: the chain is not OK either.
	dir := t.TempDir()
	full := &fixture.Chain17{Start: 0x2000028, Algorithm: "SHA256"}
	full.Add("base/5/16384", fixture.Blocks("abc"))
	inc := &fixture.Chain17{Start: 0x4000028, From: 0x2000028, Algorithm: "SHA256"}
	inc.Add("base/5/INCREMENTAL.16384", fixture.IncrementalFile(3, []uint32{1}, "B"))
	fs, err := full.Stream()
	if err != nil {
		t.Fatal(err)
	}
	is, err := inc.Stream()
	if err != nil {
		t.Fatal(err)
	}
	fullPath := filepath.Join(dir, "full.tar")
	if err := os.WriteFile(fullPath, fs.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code = ww(t, nil, struct{ *bytes.Reader }{bytes.NewReader(is.Bytes())}, "verify", "--no-wal", fullPath, "-")
	if code != 1 || strings.Contains(stdout, "chain: OK") || !strings.Contains(stdout, "stdin: UNVERIFIED: ") || !strings.Contains(stdout, "chain: UNVERIFIED") {
		t.Fatalf("chain with stdin: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	stdout, stderr, code = ww(t, nil, struct{ *bytes.Reader }{bytes.NewReader(is.Bytes())}, "verify", "--no-wal", "--allow-unverified", fullPath, "-")
	if code != 0 || !strings.Contains(stdout, "chain: OK") {
		t.Fatalf("chain with stdin, --allow-unverified: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

// Item 12: one is singular ("1 node", "1 WAL segment", "1 incremental backup") and the JSON
// report's durations are rounded to the millisecond.
func TestWordsSingularAndDurationsRounded(t *testing.T) {
	for n, want := range map[int]string{0: "0 nodes", 1: "1 node", 2: "2 nodes"} {
		if got := plural(n, "node"); got != want {
			t.Errorf("plural(%d) = %q", n, got)
		}
	}
	for ms := 0; ms < 20000; ms++ {
		b, _ := json.Marshal(fleet.Seconds(time.Duration(ms)*time.Millisecond + 400*time.Microsecond))
		if want := strconv.FormatFloat(float64(ms)/1000, 'f', -1, 64); string(b) != want {
			t.Fatalf("%d ms is %s in JSON, want %s", ms, b, want)
		}
	}
	cs := fleetClusters(t, 1)
	report := filepath.Join(t.TempDir(), "r.json")
	_, stderr, code := ww(t, nil, nil, "fleet", "backup", "--node", "a="+cs[0].DSN(), "-c", "fast", "-o", filepath.Join(t.TempDir(), "{node}.tar"), "--report", report)
	if code != 0 || !strings.Contains(stderr, "fleet backup complete: 1 node, restore point") {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	b, _ := os.ReadFile(report)
	for _, m := range regexp.MustCompile(`"(\w+_seconds)": ([0-9.e-]+)`).FindAllStringSubmatch(string(b), -1) {
		if !regexp.MustCompile(`^\d+(\.\d{1,3})?$`).MatchString(m[2]) {
			t.Errorf("%s is %s, not rounded to the millisecond", m[1], m[2])
		}
	}
	_, stderr, code = ww(t, nil, nil, "backup", "-d", cs[0].DSN(), "-c", "fast", "-P", "-o", filepath.Join(t.TempDir(), "b.tar"))
	counts := regexp.MustCompile(`\b(\d+) (WAL segments?|data files?)\b`).FindAllStringSubmatch(stderr, -1)
	if code != 0 || len(counts) == 0 {
		t.Fatalf("backup -P: exit %d, no counts in:\n%s", code, stderr)
	}
	for _, m := range counts {
		if (m[1] == "1") != !strings.HasSuffix(m[2], "s") {
			t.Errorf("%q: number and noun disagree", m[0])
		}
	}
}
