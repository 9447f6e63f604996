package verify_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/walweave/walweave/verify"
	fixture "github.com/walweave/walweave/verify/verifytest"
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
	for _, o := range []fixture.SynthOptions{{}, {Switch: true}, {Tablespace: true, WALRecords: 9000}, {SegSize: 2 << 20, WALMaxBytes: 30000}} {
		s := fixture.Synth(o)
		rep := check(t, s.Bytes(), verify.Options{})
		if !rep.OK() {
			t.Fatalf("%+v: not OK:\n%s", o, rep)
		}
		if rep.WALSegments < 2 || rep.WALRecords < 100 || rep.ChecksumsVerified != len(s.Files())-2 {
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
