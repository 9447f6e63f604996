package restore_test

import (
	"os"
	"sync"
	"testing"

	"github.com/walweave/walweave/internal/pgtest"
	fixture "github.com/walweave/walweave/verify/verifytest"
)

// One cluster and one base backup for the package's real-server tests.
var (
	cluster *pgtest.Cluster

	realOnce   sync.Once
	realStream *fixture.Stream
	realBackup *fixture.Backup
	realErr    error
)

// TestMain stops the cluster, which is started by the first test that needs it (so that
// synthetic tests and fuzz workers do not start one).
func TestMain(m *testing.M) {
	code := m.Run()
	if cluster != nil {
		cluster.Close()
	}
	os.Exit(code)
}

func real(t *testing.T) (*pgtest.Cluster, *fixture.Backup, *fixture.Stream) {
	t.Helper()
	pgtest.Require(t)
	realOnce.Do(func() {
		cluster, realErr = pgtest.StartMain(pgtest.Options{})
		if realErr != nil {
			return
		}
		realBackup = fixture.TakeBackup(t, cluster)
		realStream, realErr = fixture.FromBackup(realBackup)
	})
	if realStream == nil {
		t.Fatalf("building the real stream failed: %v", realErr)
	}
	return cluster, realBackup, realStream
}
