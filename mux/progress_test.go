package mux_test

import (
	"context"
	"testing"
	"time"

	"github.com/walweave/walweave/internal/pgtest"
	"github.com/walweave/walweave/mux"
)

// TestCheckpointNotCountedAsSilence: the start checkpoint's wait is not counted by the progress
// timeout. A spread checkpoint that lasts several times ProgressTimeout (the server sends
// nothing on the base backup connection meanwhile) ends in a backup that succeeds. The test
// measures the checkpoint's wait on the server, so that it fails, rather than passes, when the
// checkpoint was too short to show anything.
func TestCheckpointNotCountedAsSilence(t *testing.T) {
	const progress = 2 * time.Second
	// checkpoint_timeout 30s (the minimum) with completion target 0.5: a spread checkpoint of
	// pgbench's dirtied accounts is paced over about 15 s.
	c := pgtest.Start(t, pgtest.Options{Settings: map[string]string{
		"checkpoint_timeout": "30s", "checkpoint_completion_target": "0.5", "max_wal_size": "4GB"}})
	c.PgbenchInit(t, 1)
	c.Exec(t, "checkpoint")
	dirty(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	done := backupAsync(ctx, mux.Config{ConnString: c.DSN(), ProgressTimeout: progress})
	walsenders(t, c, done, phaseCheckpoint, ".")
	start := time.Now()
	var waited time.Duration
	for {
		if c.QueryValue(t, "select count(*) from pg_stat_progress_basebackup where phase = $1", phaseCheckpoint) == "0" {
			waited = time.Since(start)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("the base backup waited at least %v for the start checkpoint (progress timeout %v)", waited.Round(time.Millisecond), progress)
	if waited < 2*progress {
		t.Fatalf("the checkpoint took %v, not long enough to show that it is not counted (want over %v)", waited, 2*progress)
	}
	if err := <-done; err != nil {
		t.Fatalf("a checkpoint longer than the progress timeout failed the backup: %v", err)
	}
}
