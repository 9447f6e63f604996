package restore_test

import (
	"os"
	"testing"

	"github.com/walweave/walweave/internal/pgtest"
	fixture "github.com/walweave/walweave/verify/verifytest"
)

// shared is one cluster and one base backup for the package's real-server tests.
var shared fixture.Shared

func TestMain(m *testing.M) {
	code := m.Run()
	shared.Close()
	os.Exit(code)
}

// real returns the cluster, the base backup and the stream built from it (made once).
func real(t *testing.T) (*pgtest.Cluster, *fixture.Backup, *fixture.Stream) {
	t.Helper()
	return shared.Get(t)
}
