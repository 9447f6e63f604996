package verify_test

import (
	"testing"

	"github.com/walweave/walweave/verify"
)

func TestRealStreamOK(t *testing.T) {
	_, _, s := real(t)
	for _, m := range s.Members {
		t.Logf("%c %8d %s", m.Type, len(m.Data), m.Name)
	}
	rep := check(t, s.Bytes(), verify.Options{})
	t.Logf("%s", rep)
	if !rep.OK() {
		t.Fatal("not OK")
	}
}
