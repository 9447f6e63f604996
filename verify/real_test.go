package verify_test

import (
	"testing"

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
