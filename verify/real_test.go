package verify_test

import (
	"archive/tar"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/walweave/walweave/internal/verifytest"
	"github.com/walweave/walweave/verify"
)

func TestRealStreamOK(t *testing.T) {
	_, _, s := shared.Get(t)
	rep := check(t, s.Bytes(), verify.Options{})
	t.Logf("%s", rep)
	if !rep.OK() || rep.WALSegments < 2 || rep.SystemID == 0 || rep.ChecksumsVerified < 900 {
		t.Fatalf("not OK, or figures off: %+v", rep)
	}
}

// TestRealManifestVersion: the server's manifest version is 1 before 17 and 2 (with
// System-Identifier) from 17; verify reads both, and on version 2 it checks the
// System-Identifier against global/pg_control: a manifest naming another system fails.
func TestRealManifestVersion(t *testing.T) {
	c, _, s := shared.Get(t)
	rep := check(t, s.Bytes(), verify.Options{})
	want := 1
	if c.Version >= 17 {
		want = 2
	}
	if rep.ManifestVersion != want || !rep.OK() {
		t.Fatalf("%s: manifest version %d (OK %v), want %d", c.Server, rep.ManifestVersion, rep.OK(), want)
	}
	man := s.Get("backup_manifest").Data
	re := regexp.MustCompile(`"System-Identifier": (\d+),`)
	m := re.FindSubmatch(man)
	if want == 1 {
		if m != nil {
			t.Fatalf("version 1 manifest with a System-Identifier: %s", m[0])
		}
		return
	}
	if m == nil || string(m[1]) != strconv.FormatUint(rep.SystemID, 10) {
		t.Fatalf("System-Identifier %q, pg_control says %d", m, rep.SystemID)
	}
	bad := s.Clone()
	other := re.ReplaceAll(man, []byte(fmt.Sprintf(`"System-Identifier": %d,`, rep.SystemID+1)))
	bad.Get("backup_manifest").Data = verifytest.Rechecksum(other)
	rep = check(t, bad.Bytes(), verify.Options{})
	if rep.OK() || !strings.Contains(fmt.Sprint(rep.Problems), "System-Identifier") {
		t.Fatalf("a manifest of another system passed: %+v", rep.Problems)
	}
	t.Logf("other system: %v", rep.Problems)
}

// TestRealSummariesDirectory: from 17 the server sends an empty pg_wal/summaries/ directory
// member; the stream built from it keeps it and verify accepts it. Before 17 there is none.
func TestRealSummariesDirectory(t *testing.T) {
	c, _, s := shared.Get(t)
	i := s.Index("pg_wal/summaries")
	if c.Version >= 17 && (i < 0 || s.Members[i].Type != tar.TypeDir) {
		t.Fatalf("%s: no pg_wal/summaries directory member", c.Server)
	}
	if c.Version < 17 && i >= 0 {
		t.Fatalf("%s: unexpected pg_wal/summaries member", c.Server)
	}
	if rep := check(t, s.Bytes(), verify.Options{}); !rep.OK() {
		t.Fatalf("not OK: %v", rep.Problems)
	}
}
