package walarchive

import (
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
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
