package pgerr

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

func TestSentinelsByKind(t *testing.T) {
	pg := func(code string) error { return &pgconn.PgError{Code: code, Message: "m"} }
	for _, tc := range []struct {
		err      error
		want     error
		not      error
		hintWord string
	}{
		{pg("53300"), ErrTooFewWALSenders, ErrTooManyConnections, "max_wal_senders"},
		{On(Ordinary, pg("53300")), ErrTooManyConnections, ErrTooFewWALSenders, "max_connections"},
		{fmt.Errorf("outer: %w", On(Ordinary, fmt.Errorf("inner: %w", pg("42501")))), ErrPermissionDenied, ErrNoReplicationRole, "EXECUTE"},
		{On(Replication, pg("42501")), ErrNoReplicationRole, ErrPermissionDenied, "ALTER ROLE ROLE REPLICATION"},
		{pg("28P01"), ErrAuthentication, nil, "no password was given"},
		{pg("28000"), ErrAuthentication, nil, "pg_hba.conf"},
		{On(Ordinary, pg("53400")), nil, ErrTooFewSlots, ""},
		{CheckVersion(140011, "14.11"), ErrServerTooOld, nil, "pg_basebackup"},
	} {
		if tc.want != nil && !errors.Is(tc.err, tc.want) && !Matches(tc.err, tc.want) {
			t.Errorf("%v does not match %v", tc.err, tc.want)
		}
		if tc.not != nil && (errors.Is(tc.err, tc.not) || Matches(tc.err, tc.not)) {
			t.Errorf("%v matches %v", tc.err, tc.not)
		}
		if h := Hint(tc.err); !strings.Contains(h, tc.hintWord) || (tc.hintWord == "") != (h == "") {
			t.Errorf("%v: hint %q, want it to say %q", tc.err, h, tc.hintWord)
		}
	}
	if err := CheckVersion(150000, "15.0"); err != nil {
		t.Errorf("15 refused: %v", err)
	}
	if On(Ordinary, nil) != nil {
		t.Error("On(nil) is not nil")
	}
	if e := On(Replication, On(Ordinary, pg("53300"))); !errors.Is(e, ErrTooManyConnections) {
		t.Error("a marked error lost its kind")
	}
}
