package mux_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/walweave/walweave/internal/pgtest"
	"github.com/walweave/walweave/mux"
	"github.com/walweave/walweave/pgformat"
)

// The phase API against a real server: after CopyData the test writes rows and a named restore
// point, ExtendWAL makes the stream carry the WAL past it, AppendRecoveryConf stops recovery
// there. The restored copy has the rows written before the point and not those after: the WAL
// went past the backup's own end, and recovery stopped exactly where it was told.
func TestSessionExtendWALToRestorePoint(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{})
	c.Exec(t, "create table marks (n int)")
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "base.tar")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	s, err := mux.Start(ctx, f, mux.Config{ConnString: c.DSN(), Checkpoint: mux.CheckpointFast})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	end, err := s.CopyData(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Move the WAL a few segments past the backup's end, then the point, then more rows.
	for i := 0; i < 3; i++ {
		c.Exec(t, "insert into marks values (1)")
		c.Exec(t, "select pg_switch_wal()")
	}
	rp, err := pgformat.ParseLSN(c.QueryValue(t, "select pg_create_restore_point('session-test')"))
	if err != nil {
		t.Fatal(err)
	}
	c.Exec(t, "insert into marks values (2)") // its commit flushes the restore point's record
	if rp <= end.EndLSN {
		t.Fatalf("restore point %s is not after the backup's end %s", rp, end.EndLSN)
	}
	if err := s.ExtendWAL(rp); err != nil {
		t.Fatal(err)
	}
	// recovery.signal needs a restore_command; one that finds nothing makes recovery read the
	// stream's pg_wal only.
	if err := s.AppendRecoveryConf("restore_command = 'false'\nrecovery_target_name = 'session-test'\nrecovery_target_action = 'promote'"); err != nil {
		t.Fatal(err)
	}
	res, err := s.Finish(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	want := pgformat.WALFileName(res.EndTimeline, rp, 16<<20)
	found := false
	for _, m := range pgtest.ListTar(t, path) {
		found = found || m.Name == "pg_wal/"+want
	}
	if !found {
		t.Fatalf("the stream lacks pg_wal/%s, the segment holding the restore point %s", want, rp)
	}
	c.RestoreDrill(t, path, pgtest.Drill{Queries: map[string]string{
		"select count(*) from marks where n = 1": "3",
		"select count(*) from marks where n = 2": "0",
		"select pg_is_in_recovery()":             "false",
	}})
}

// slowCounter accepts writes slowly and counts what it accepted; first, when set, is called
// at the first write.
type slowCounter struct {
	n     int64
	first func()
	once  sync.Once
}

func (w *slowCounter) Write(p []byte) (int, error) {
	if w.first != nil {
		w.once.Do(w.first)
	}
	time.Sleep(200 * time.Millisecond)
	w.n += int64(len(p))
	return len(p), nil
}

// deadlineAt is a context whose deadline is reached when reach is called (its Err is then
// context.DeadlineExceeded, as a deadline's), at a moment the test chooses rather than a
// guessed duration.
type deadlineAt struct {
	context.Context
	done chan struct{}
	once sync.Once
}

func newDeadlineAt() *deadlineAt {
	return &deadlineAt{Context: context.Background(), done: make(chan struct{})}
}

func (d *deadlineAt) reach()                { d.once.Do(func() { close(d.done) }) }
func (d *deadlineAt) Done() <-chan struct{} { return d.done }
func (d *deadlineAt) Deadline() (time.Time, bool) {
	return time.Now().Add(time.Hour), true // not yet known; reach decides
}

func (d *deadlineAt) Err() error {
	select {
	case <-d.done:
		return context.DeadlineExceeded
	default:
		return nil
	}
}

// A deadline reached mid-backup is an *Error that names the side and phase (not a bare
// "context deadline exceeded"), and the failed backup's Result agrees with what the writer got.
func TestDeadlineNamesSideAndPhase(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{})
	c.PgbenchInit(t, 2)
	// The deadline is reached when the writer gets its first bytes: in the streaming phase
	// by construction, not by a guess of how long the start takes (the writer then takes
	// 200 ms a write, far longer than the rest of the backup).
	ctx := newDeadlineAt()
	w := &slowCounter{first: ctx.reach}
	res, err := mux.Backup(ctx, w, mux.Config{ConnString: c.DSN(), Checkpoint: mux.CheckpointFast})
	var e *mux.Error
	if !errors.As(err, &e) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want a *mux.Error wrapping context.DeadlineExceeded", err)
	}
	if e.Side != mux.SideBaseBackup || e.Phase != mux.PhaseStreaming || e.Server == "" {
		t.Fatalf("error %+v: want the base backup side, phase %q, the server named", e, mux.PhaseStreaming)
	}
	t.Logf("error: %v", err)
	if res.BytesWritten != w.n || res.BytesWritten == 0 {
		t.Fatalf("Result.BytesWritten %d, the writer accepted %d", res.BytesWritten, w.n)
	}
	if res.DataFiles == 0 || res.StartLSN == 0 || res.EndLSN != 0 {
		t.Fatalf("Result %+v: want data files counted, a start LSN and no end LSN", res)
	}
	assertNothingLeft(t, c)
}
