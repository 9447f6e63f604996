package verify_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"

	fixture "github.com/walweave/walweave/internal/verifytest"
	"github.com/walweave/walweave/pgformat"
	"github.com/walweave/walweave/verify"
)

func check17(t *testing.T, b *fixture.Chain17, edit func(s *fixture.Stream)) *verify.Report {
	t.Helper()
	s, err := b.Stream()
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(s)
	}
	rep, err := verify.Stream(context.Background(), bytes.NewReader(s.Bytes()), verify.Options{SkipWAL: true})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func incremental17() *fixture.Chain17 {
	b := &fixture.Chain17{Start: 0x4000028, From: 0x2000028}
	b.Add("base/5/INCREMENTAL.16384", fixture.IncrementalFile(3, []uint32{1, 3}, "BD"))
	b.Add("base/5/INCREMENTAL.16385", fixture.IncrementalFile(1, nil, ""))
	b.Add("base/5/16388", fixture.Blocks("n"))
	return b
}

func TestIncrementalStream(t *testing.T) {
	rep := check17(t, incremental17(), nil)
	if !rep.OK() || !rep.Incremental || rep.IncrementalFromLSN != 0x2000028 || rep.IncrementalFromTLI != 1 || rep.IncrementalFiles != 2 {
		t.Fatalf("%s\n%+v", rep, rep)
	}
	if !strings.Contains(rep.String(), "incremental from 0/2000028 on timeline 1 (2 INCREMENTAL files)") {
		t.Errorf("report: %s", rep)
	}
}

// TestIncrementalStreamProblems: a damaged INCREMENTAL file is a problem even when the
// manifest agrees with it (rebuilt to match), so the header checks are what find it.
func TestIncrementalStreamProblems(t *testing.T) {
	for _, c := range []struct {
		name string
		file []byte
		want string
	}{
		{"bad magic", func() []byte {
			b := fixture.IncrementalFile(3, []uint32{1}, "B")
			binary.LittleEndian.PutUint32(b, 0xdeadbeef)
			return b
		}(), "magic number"},
		{"size", append(fixture.IncrementalFile(3, []uint32{1}, "B"), 0), "makes it"},
		{"short", []byte{1, 2, 3}, "shorter than its 12-byte header"},
		{"not ascending", fixture.IncrementalFile(3, []uint32{2, 1}, "BC"), "strictly ascending"},
		{"truncation length", fixture.IncrementalFile(1<<20, nil, ""), "exceeds the segment"},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := &fixture.Chain17{Start: 0x4000028, From: 0x2000028}
			b.Add("base/5/INCREMENTAL.16384", c.file)
			rep := check17(t, b, nil)
			if rep.OK() || !strings.Contains(rep.String(), c.want) {
				t.Fatalf("want a problem with %q, got:\n%s", c.want, rep)
			}
		})
	}
	// INCREMENTAL files without INCREMENTAL FROM lines.
	b := incremental17()
	b.From = 0
	if rep := check17(t, b, nil); rep.OK() || !strings.Contains(rep.String(), "no INCREMENTAL FROM lines") {
		t.Fatalf("%s", rep)
	}
}

func TestCheckChain(t *testing.T) {
	full := &verify.Report{StartLSN: 0x2000028, StartTimeline: 1, SystemID: 7}
	inc1 := &verify.Report{StartLSN: 0x4000028, StartTimeline: 1, SystemID: 7, Incremental: true, IncrementalFromLSN: 0x2000028, IncrementalFromTLI: 1}
	inc2 := &verify.Report{StartLSN: 0x6000028, StartTimeline: 1, SystemID: 7, Incremental: true, IncrementalFromLSN: 0x4000028, IncrementalFromTLI: 1}
	other := &verify.Report{StartLSN: 0x4000028, StartTimeline: 1, SystemID: 8, Incremental: true, IncrementalFromLSN: 0x2000028, IncrementalFromTLI: 1}
	full.PGVersion = 17
	otherMajor := &verify.Report{StartLSN: 0x4000028, StartTimeline: 1, SystemID: 7, PGVersion: 18, Incremental: true, IncrementalFromLSN: 0x2000028, IncrementalFromTLI: 1}
	otherTLI := &verify.Report{StartLSN: 0x4000028, StartTimeline: 2, SystemID: 7, Incremental: true, IncrementalFromLSN: 0x2000028, IncrementalFromTLI: 2}
	names := []string{"a", "b", "c"}
	if err := verify.CheckChain(names, []*verify.Report{full, inc1, inc2}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		chain []*verify.Report
		want  string
	}{
		{"incremental first", []*verify.Report{inc1, inc2}, "a chain starts with a full backup"},
		{"full twice", []*verify.Report{full, full}, "only the first backup of a chain is full"},
		{"wrong order", []*verify.Report{full, inc2, inc1}, "give the backups in the order they were taken"},
		{"missing middle", []*verify.Report{full, inc2}, "a backup between them is missing"},
		{"another system", []*verify.Report{full, other}, "another cluster"},
		{"another major version", []*verify.Report{full, otherMajor}, "b is a backup of PostgreSQL 18, a of PostgreSQL 17: a chain is of one cluster"},
		{"another timeline", []*verify.Report{full, otherTLI}, "timeline 2"},
	} {
		err := verify.CheckChain(names, c.chain)
		if !errors.Is(err, verify.ErrChain) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", c.name, err, c.want)
		}
	}
}

// TestOriginComment: walweave's comment on backup_label (pgformat.BackupOrigin) must agree
// with global/pg_control and PG_VERSION; a stream whose comment names another cluster or
// version mixes two backups' files, and says so.
func TestOriginComment(t *testing.T) {
	same, err := fixture.Origin17()
	if err != nil {
		t.Fatal(err)
	}
	b := incremental17()
	b.Origin = same
	if rep := check17(t, b, nil); !rep.OK() {
		t.Fatalf("a stream whose comment agrees: %s", rep)
	}
	for _, c := range []struct {
		origin pgformat.BackupOrigin
		want   string
	}{
		{pgformat.BackupOrigin{SystemID: same.SystemID + 1, ServerVersion: 170006}, fmt.Sprintf("names the cluster with system identifier %d, global/pg_control is of %d", same.SystemID+1, same.SystemID)},
		{pgformat.BackupOrigin{SystemID: same.SystemID, ServerVersion: 180001}, "says PostgreSQL 18, PG_VERSION says 17"},
	} {
		b.Origin = c.origin
		if rep := check17(t, b, nil); rep.OK() || !strings.Contains(rep.String(), c.want) {
			t.Errorf("comment %s: want a problem with %q, got:\n%s", c.origin, c.want, rep)
		}
	}
}
