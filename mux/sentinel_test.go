package mux_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/walweave/walweave/internal/pgrepl"
	"github.com/walweave/walweave/internal/pgtest"
	"github.com/walweave/walweave/internal/source/basebackup"
	"github.com/walweave/walweave/internal/source/sqlfetch"
	"github.com/walweave/walweave/mux"
	"github.com/walweave/walweave/walstream"
)

// The sentinels hold whichever source and side failed, read for the kind of connection that
// failed: 53300 and 42501 mean max_wal_senders and the REPLICATION attribute on a replication
// connection, max_connections and a missing privilege on a Jobs connection. Each failure's
// Hint is the advice for that sentinel, and no error's text repeats pgconn's per-attempt
// chain.
func TestSentinelsPerSource(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{Settings: map[string]string{"max_wal_senders": "1"}})
	grantJobs(t, c)
	ctx := context.Background()
	noRepl := strings.Replace(c.DSN(), "user="+pgtest.ReplicationUser, "user="+pgtest.NoReplicationUser, 1)
	cases := []struct {
		name     string
		setup    string // SQL run first (as the superuser)
		cfg      mux.Config
		side     mux.Side
		want     error
		not      error
		wantHint string
	}{
		{name: "BASE_BACKUP without REPLICATION", cfg: mux.Config{ConnString: noRepl},
			side: mux.SideBaseBackup, want: mux.ErrNoReplicationRole, not: mux.ErrPermissionDenied, wantHint: "ALTER ROLE " + pgtest.NoReplicationUser + " REPLICATION"},
		{name: "WAL receiver, walsenders exhausted", cfg: mux.Config{ConnString: c.DSN()},
			side: mux.SideWAL, want: mux.ErrTooFewWALSenders, not: mux.ErrTooManyConnections, wantHint: "max_wal_senders"},
		{name: "jobs, connection limit", setup: "alter role " + pgtest.ReplicationUser + " connection limit 2",
			cfg:  mux.Config{ConnString: c.DSN(), Jobs: 4},
			side: mux.SideBaseBackup, want: mux.ErrTooManyConnections, not: mux.ErrTooFewWALSenders, wantHint: "fewer jobs"},
		{name: "jobs, no CONNECT", setup: "alter role " + pgtest.ReplicationUser + " connection limit -1; revoke connect on database postgres from public",
			cfg:  mux.Config{ConnString: c.DSN(), Jobs: 2},
			side: mux.SideBaseBackup, want: mux.ErrPermissionDenied, not: mux.ErrNoReplicationRole, wantHint: "CONNECT on the database"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.setup != "" {
				c.Exec(t, tc.setup)
			}
			tc.cfg.Checkpoint = mux.CheckpointFast
			_, err := mux.Backup(ctx, io.Discard, tc.cfg)
			t.Logf("error: %v", err)
			t.Logf("hint: %s", mux.Hint(err))
			var me *mux.Error
			if !errors.As(err, &me) {
				t.Fatalf("%T %v, want a *mux.Error", err, err)
			}
			if me.Side != tc.side {
				t.Errorf("side %q, want %q", me.Side, tc.side)
			}
			if !errors.Is(err, tc.want) {
				t.Errorf("errors.Is(err, %v) is false", tc.want)
			}
			if errors.Is(err, tc.not) {
				t.Errorf("errors.Is(err, %v) is true", tc.not)
			}
			if h := me.Hint(); !strings.Contains(h, tc.wantHint) || h != mux.Hint(err) {
				t.Errorf("hint %q, want it to say %q", h, tc.wantHint)
			}
			if strings.Contains(err.Error(), "failed to connect to") {
				t.Errorf("the error repeats pgconn's per-attempt text: %v", err)
			}
			assertNothingLeft(t, c)
		})
	}
}

// ErrServerTooOld holds for every source and for the WAL receiver alike. It needs a server
// older than walweave's minimum, so it runs with WALWEAVE_PG=14 (scripts/test-matrix.sh).
func TestServerTooOldEverySource(t *testing.T) {
	srv, err := pgtest.Selected()
	if err != nil {
		t.Fatal(err)
	}
	if srv.Major >= pgtest.MinMajor {
		t.Skipf("needs a server older than %d (WALWEAVE_PG=14); %s is supported", pgtest.MinMajor, srv)
	}
	c := pgtest.Start(t, pgtest.Options{Unsupported: true})
	ctx := context.Background()
	cc, err := pgrepl.ParseConfig(c.DSN())
	if err != nil {
		t.Fatal(err)
	}
	_, bbErr := basebackup.New(basebackup.Config{ConnConfig: cc.Copy()}).Open(ctx)
	sq := sqlfetch.New(sqlfetch.Config{ConnString: c.DSN(), Jobs: 2})
	_, sqErr := sq.Open(ctx)
	sq.Close()
	_, walErr := walstream.Connect(ctx, walstream.Config{ConnConfig: cc.Copy()})
	_, muxErr := mux.Backup(ctx, io.Discard, mux.Config{ConnString: c.DSN()})
	for name, err := range map[string]error{"BASE_BACKUP": bbErr, "jobs": sqErr, "WAL receiver": walErr, "mux": muxErr} {
		if !errors.Is(err, mux.ErrServerTooOld) {
			t.Errorf("%s: %v does not match ErrServerTooOld", name, err)
		}
	}
	if h := mux.Hint(muxErr); !strings.Contains(h, "pg_basebackup") {
		t.Errorf("hint %q", h)
	}
}
