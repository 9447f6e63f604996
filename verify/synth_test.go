package verify_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	fixture "github.com/walweave/walweave/internal/verifytest"
	"github.com/walweave/walweave/verify"
)

func check(t *testing.T, b []byte, opts verify.Options) *verify.Report {
	t.Helper()
	rep, err := verify.Stream(context.Background(), bytes.NewReader(b), opts)
	if err != nil {
		t.Fatalf("Stream: %v", err)
	}
	return rep
}

func TestSynthOK(t *testing.T) {
	for _, o := range []fixture.SynthOptions{{}, {Switch: true}, {Tablespace: true, WALRecords: 9000}, {SegSize: 2 << 20, WALMaxBytes: 30000}, {Promote: true, WALRecords: 6000}} {
		s := fixture.Synth(o)
		rep := check(t, s.Bytes(), verify.Options{})
		if !rep.OK() {
			t.Fatalf("%+v: not OK:\n%s", o, rep)
		}
		want := 0
		for _, f := range s.Files() {
			if f != "backup_manifest" && f != "postgresql.auto.conf" && !strings.HasPrefix(f, "pg_wal/") {
				want++
			}
		}
		if rep.WALSegments < 2 || rep.WALRecords < 100 || rep.ChecksumsVerified != want {
			t.Fatalf("%+v: unexpected figures:\n%s\n%+v", o, rep, rep)
		}
		t.Logf("%s", rep)
	}
}

func wantProblem(t *testing.T, rep *verify.Report, substr ...string) {
	t.Helper()
	if rep.OK() {
		t.Fatalf("report is OK, want a problem containing %q", substr)
	}
	s := rep.String()
	for _, sub := range substr {
		if !strings.Contains(s, sub) {
			t.Fatalf("report lacks %q:\n%s", sub, s)
		}
	}
}

func TestSynthTimelines(t *testing.T) {
	base := fixture.Synth(fixture.SynthOptions{Promote: true, WALRecords: 6000})
	rep := check(t, base.Bytes(), verify.Options{})
	if !rep.OK() || len(rep.Timelines) != 2 {
		t.Fatalf("%s", rep)
	}
	var old, new string
	for _, n := range base.Segments() {
		if strings.HasPrefix(n, "pg_wal/00000002") && new == "" {
			new = n
			old = "pg_wal/00000001" + n[len("pg_wal/00000002"):]
		}
	}
	s := base.Clone()
	s.Remove("pg_wal/00000002.history")
	wantProblem(t, check(t, s.Bytes(), verify.Options{}), "00000002.history: missing timeline history file")
	s = base.Clone()
	s.Get("pg_wal/00000002.history").Data = []byte("1\t0/1000000\tno recovery target specified\n")
	wantProblem(t, check(t, s.Bytes(), verify.Options{}), "timeline 1 ends at 0/1000000 in the history file")
	s = base.Clone()
	s.Remove(old)
	wantProblem(t, check(t, s.Bytes(), verify.Options{}), old+": missing WAL segment")
	s = base.Clone()
	s.Remove(new)
	wantProblem(t, check(t, s.Bytes(), verify.Options{}), new+": missing WAL segment")
	// The old timeline's copy of the switch segment (zero after the switch) in place of the
	// new one's: timeline 2's WAL ends where it should begin.
	s = base.Clone()
	s.Get(new).Data = s.Get(old).Data
	wantProblem(t, check(t, s.Bytes(), verify.Options{}), new+": the WAL ends at")
}
