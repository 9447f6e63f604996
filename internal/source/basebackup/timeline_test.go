package basebackup

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/walweave/walweave/internal/pgrepl"
	"github.com/walweave/walweave/internal/pgtest"
	"github.com/walweave/walweave/pgformat"
)

// The prior backup's timeline is checked against the server's history before BASE_BACKUP
// (no server message has to tell it apart afterwards): on a promoted standby (timeline 2), a
// prior backup on timeline 1 that ended before the switch fits, one that went on past it
// does not, nor does one on a timeline the server never had.
func TestCheckPriorTimeline(t *testing.T) {
	p := pgtest.Start(t, pgtest.Options{})
	s := p.Standby(t)
	p.Exec(t, "select pg_switch_wal()")
	s.Promote(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cc, err := pgrepl.ParseConfig(s.DSN())
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgconn.ConnectConfig(ctx, cc)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	sys, err := pgrepl.IdentifySystem(ctx, conn)
	if err != nil || sys.Timeline != 2 {
		t.Fatalf("the promoted standby: timeline %d, %v", sys.Timeline, err)
	}
	_, content, err := pgrepl.TimelineHistory(ctx, conn, 2)
	if err != nil {
		t.Fatal(err)
	}
	hist, err := pgformat.ParseHistory(content)
	if err != nil || len(hist) != 1 {
		t.Fatalf("history %q: %v", content, err)
	}
	switchLSN := hist[0].SwitchLSN
	manifest := func(tli uint32, end pgformat.LSN) []byte {
		var b bytes.Buffer
		mb, err := pgformat.NewManifestBuilder(&b, pgformat.ManifestOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := mb.Finish([]pgformat.WALRange{{Timeline: tli, Start: 0x1000028, End: end}}); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	for _, tc := range []struct {
		name   string
		tli    uint32
		end    pgformat.LSN
		refuse bool
	}{
		{"the ancestor, before the switch", 1, switchLSN, false},
		{"the ancestor, past the switch", 1, switchLSN + 0x100000, true},
		{"the server's timeline", 2, switchLSN + 0x100000, false},
		{"a later timeline", 3, 0x1000100, true},
	} {
		err := checkPriorTimeline(ctx, conn, manifest(tc.tli, tc.end))
		if got := errors.Is(err, ErrPriorTimeline); got != tc.refuse || (!tc.refuse && err != nil) {
			t.Errorf("%s (timeline %d to %s, switch at %s): %v", tc.name, tc.tli, tc.end, switchLSN, err)
		}
	}
}
