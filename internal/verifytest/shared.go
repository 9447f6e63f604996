package verifytest

import (
	"sync"
	"testing"

	"github.com/walweave/walweave/internal/pgtest"
)

// Shared is one cluster and one base backup for a test package's real-server tests, made by the
// first test that asks for them (so synthetic tests and fuzz workers start no server). Declare
// one per package and call Close from TestMain after m.Run.
type Shared struct {
	once    sync.Once
	cluster *pgtest.Cluster
	backup  *Backup
	stream  *Stream
	err     error
}

// Get returns the cluster, its base backup (TakeBackup) and the stream built from it
// (FromBackup), making them on the first call. Without PostgreSQL it skips the test, or fails
// it under WALWEAVE_REQUIRE_PG=1 (pgtest.Require).
func (s *Shared) Get(t *testing.T) (*pgtest.Cluster, *Backup, *Stream) {
	t.Helper()
	pgtest.Require(t)
	s.once.Do(func() {
		s.cluster, s.err = pgtest.StartMain(pgtest.Options{})
		if s.err != nil {
			return
		}
		s.backup = TakeBackup(t, s.cluster)
		s.stream, s.err = FromBackup(s.backup)
	})
	if s.stream == nil {
		t.Fatalf("building the real stream failed: %v", s.err)
	}
	return s.cluster, s.backup, s.stream
}

// Close stops the cluster, if one was started.
func (s *Shared) Close() {
	if s.cluster != nil {
		s.cluster.Close()
	}
}
