package walstream

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/walweave/walweave/internal/pgtest"
	"github.com/walweave/walweave/ringbuf"
)

// The receiver's failures are told apart by SQLSTATE and by what it knows of the server, not
// by the server's messages: against a server whose lc_messages is German (Debian's PostgreSQL
// ships the translation; scripts/setup.sh generates the de_DE.UTF-8 locale), each failure
// still wraps its sentinel.
func TestServerErrorsInAnotherLanguage(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{Settings: map[string]string{"lc_messages": "de_DE.UTF-8",
		"wal_keep_size": "0", "max_wal_size": "32MB", "min_wal_size": "32MB"}})
	if got := c.QueryValue(t, "select current_setting('lc_messages')"); got != "de_DE.UTF-8" {
		t.Fatalf("lc_messages is %q", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	old := lsnOf(t, c, "select pg_current_wal_lsn()")
	check := func(what string, err, want error) {
		t.Helper()
		t.Logf("%s: %v", what, err)
		if !errors.Is(err, want) {
			t.Errorf("%s: %v does not wrap %v", what, err, want)
		}
	}

	r := connectT(t, connCfg(t, c, "", 0))
	err := r.Stream(ctx, ringbuf.New(2), r.XLogPos()+64<<20, r.Timeline(), r.SystemID())
	check("start ahead", err, ErrStartAhead)
	// Debian's PostgreSQL (the default server) ships the German catalog; the other builds
	// may not, and then the server speaks English whatever lc_messages says.
	if strings.Contains(fmt.Sprint(err), "is ahead of the WAL flush position") {
		if c.Version == pgtest.DefaultMajor {
			t.Fatalf("the server's messages are in English although lc_messages is German: %v", err)
		}
		t.Logf("PostgreSQL %d here has no German messages: the sentinels are checked against English ones", c.Version)
	}
	r = connectT(t, connCfg(t, c, "", 0))
	check("timeline", r.Stream(ctx, ringbuf.New(2), r.XLogPos(), r.Timeline()+5, r.SystemID()), ErrTimelineNotInHistory)

	for i := 0; i < 6; i++ {
		c.Exec(t, "select pg_switch_wal(); create table if not exists t (i int); insert into t values (1); checkpoint")
	}
	r = connectT(t, connCfg(t, c, "", 0))
	check("WAL removed", r.Stream(ctx, ringbuf.New(2), old, r.Timeline(), r.SystemID()), ErrWALRemoved)

	// A walsender terminated while it streams.
	r = connectT(t, connCfg(t, c, "", 0))
	if err := r.PrepareSlot(ctx); err != nil {
		t.Fatal(err)
	}
	res := startStream(ctx, r, ringbuf.New(64), lsnOf(t, c, "select pg_current_wal_lsn()"), r.Timeline())
	var pid string
	waitUntil(t, 10*time.Second, "the walsender to stream", func() bool {
		pid = c.QueryValue(t, "select coalesce((select active_pid::text from pg_replication_slots where slot_name = $1 and active), '')", r.SlotName())
		return pid != ""
	})
	c.Exec(t, "select pg_terminate_backend("+pid+")")
	check("terminated", res.wait(t, 10*time.Second), ErrWalsenderTerminated)

	// A permanent slot another walsender streams from.
	c.Exec(t, "select pg_create_physical_replication_slot('busy', true)")
	r1 := connectT(t, connCfg(t, c, "busy", 0))
	if err := r1.PrepareSlot(ctx); err != nil {
		t.Fatal(err)
	}
	start := lsnOf(t, c, "select restart_lsn from pg_replication_slots where slot_name = 'busy'")
	res1 := startStream(ctx, r1, ringbuf.New(64), start, r1.Timeline())
	waitUntil(t, 10*time.Second, "the slot to be active", func() bool {
		select {
		case <-res1.done:
			t.Fatalf("streaming from slot busy: %v", res1.err)
		default:
		}
		return c.QueryValue(t, "select count(*) from pg_replication_slots where slot_name = 'busy' and active") == "1"
	})
	r2 := connectT(t, connCfg(t, c, "busy", 0))
	check("slot in use", r2.PrepareSlot(ctx), ErrSlotInUse)
	r3 := connectT(t, connCfg(t, c, "nope", 0))
	check("slot missing", r3.PrepareSlot(ctx), ErrSlotMissing)
	r1.Close()
	_ = res1.wait(t, 10*time.Second)
}
