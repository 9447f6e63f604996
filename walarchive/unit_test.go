package walarchive

import (
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/walweave/walweave/pgformat"
	"github.com/walweave/walweave/walstream"
)

// Which failures end Run and which are reconnected after: by SQLSTATE, through wrapping.
func TestPermanent(t *testing.T) {
	wrap := func(code string) error {
		return fmt.Errorf("walstream: start streaming: %w", &pgconn.PgError{Code: code, Message: "x"})
	}
	for code, want := range map[string]bool{
		"28P01": true,  // password authentication failed
		"28000": true,  // no pg_hba.conf entry
		"3D000": true,  // no such database
		"42704": true,  // slot does not exist
		"42501": true,  // permission denied
		"58P01": true,  // requested WAL segment has already been removed
		"55000": true,  // slot invalidated
		"55006": false, // slot active for another PID (the old walsender after a cut)
		"57P01": false, // terminating connection due to administrator command
		"57P03": false, // the database system is starting up
		"53300": false, // too many connections
		"08006": false, // connection failure
	} {
		if got := permanent(wrap(code)); got != want {
			t.Errorf("permanent(%s) = %v, want %v", code, got, want)
		}
	}
	for _, err := range []error{io.EOF, errors.New("network is unreachable"), fmt.Errorf("read: %w", io.ErrUnexpectedEOF)} {
		if permanent(err) {
			t.Errorf("permanent(%v) = true", err)
		}
	}
}

func TestNewChecksConfig(t *testing.T) {
	sink := &ExecSink{Command: "cat >/dev/null"}
	for _, c := range []Config{
		{ConnString: "host=/nonexistent", Sink: sink},
		{ConnString: "host=/nonexistent", Slot: "s"},
		{ConnString: "host=/nonexistent", Slot: "s", Sink: sink, Synchronous: true},
		{ConnString: "host='unterminated", Slot: "s", Sink: sink},
	} {
		if _, err := New(c); err == nil {
			t.Errorf("New(%+v) accepted", c)
		}
	}
	if _, err := New(Config{ConnString: "host=/nonexistent", Slot: "s", Sink: sink}); err != nil {
		t.Fatal(err)
	}
}

// Where the archiver starts when its start timeline is older than the server's: up to the
// fork it stays; past it, the fork's segment on the timeline that followed (the next entry of
// the server's history, or the server's own timeline); a timeline not in the history is an
// error wrapping walstream.ErrTimelineNotInHistory.
func TestForkStart(t *testing.T) {
	const seg = 1 << 20
	hist := []pgformat.HistoryEntry{{Timeline: 1, SwitchLSN: 0xD4F2A8}, {Timeline: 2, SwitchLSN: 0x2300000}, {Timeline: 4, SwitchLSN: 0x3000123}}
	for _, c := range []struct {
		start    pgformat.LSN
		tli      uint32
		want     pgformat.LSN
		wantTLI  uint32
		wantEnd  pgformat.LSN
		notInHis bool
	}{
		{0xC00000, 1, 0xC00000, 1, 0xD4F2A8, false},    // before the fork's segment
		{0xD00000, 1, 0xD00000, 1, 0xD4F2A8, false},    // the fork's segment: the server switches in it
		{0x1000000, 1, 0xD00000, 2, 0xD4F2A8, false},   // past the fork: timeline 2 from the fork's segment
		{0x2300000, 2, 0x2300000, 2, 0x2300000, false}, // exactly at the end of timeline 2
		{0x2400000, 2, 0x2300000, 4, 0x2300000, false}, // timeline 3 is not on the branch: 4 follows 2
		{0x3100000, 4, 0x3000000, 5, 0x3000123, false}, // the last entry: the server's timeline follows
		{0x1000000, 3, 0, 0, 0, true},                  // timeline 3 is of another branch
	} {
		got, err := forkStart(c.start, c.tli, 5, hist, seg)
		if c.notInHis {
			if !errors.Is(err, walstream.ErrTimelineNotInHistory) {
				t.Errorf("forkStart(%s, %d): %v, want ErrTimelineNotInHistory", c.start, c.tli, err)
			}
			continue
		}
		if err != nil || got.start != c.want || got.tli != c.wantTLI || got.end != c.wantEnd {
			t.Errorf("forkStart(%s, %d) = %+v, %v; want %s on %d, end %s", c.start, c.tli, got, err, c.want, c.wantTLI, c.wantEnd)
		}
	}
}

// The newest segment of an archive is on its newest timeline, even where an older timeline
// has higher segment numbers (WAL an old primary wrote past a failover's fork).
func TestNewestSegment(t *testing.T) {
	const seg = 1 << 20
	for _, c := range []struct {
		names []string
		want  string
	}{
		{[]string{"00000001000000000000000A", "00000001000000000000000B.zst", "00000001000000000000000C.partial"}, "00000001000000000000000B"},
		{[]string{"00000001000000000000000C", "00000002000000000000000A", "00000002000000000000000B.lz4", "00000002.history"}, "00000002000000000000000B"},
		{[]string{"00000001000000000000000A", "00000002000000000000000A"}, "00000002000000000000000A"},
	} {
		f, no, ok := newestSegment(c.names, seg)
		if !ok || f.Base != c.want || pgformat.WALSegmentFileName(f.Timeline, no, seg) != c.want {
			t.Errorf("newestSegment(%v) = %s (%d, %v), want %s", c.names, f.Base, no, ok, c.want)
		}
	}
	if _, _, ok := newestSegment([]string{"00000002.history", "x"}, seg); ok {
		t.Error("newestSegment found a segment among none")
	}
}
