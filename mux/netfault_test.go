package mux_test

import (
	"context"
	"strings"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"

	"github.com/walweave/walweave/internal/pgtest"
	"github.com/walweave/walweave/internal/pgtest/pgproxy"
	"github.com/walweave/walweave/mux"
)

// proxyTo puts a Toxiproxy TCP proxy (in-process) in front of the cluster and returns it with
// a DSN that goes through it. Network faults are real: the proxy delays, throttles or resets
// the TCP connections both replication connections use.
func init() { zerolog.SetGlobalLevel(zerolog.Disabled) }

func proxyTo(t *testing.T, c *pgtest.Cluster) (*toxiproxy.Proxy, string) {
	t.Helper()
	return pgproxy.To(t, c)
}

func addToxic(t *testing.T, p *toxiproxy.Proxy, json string) {
	t.Helper()
	pgproxy.AddToxic(t, p, json)
}

// TestSlowNetwork: latency and a bandwidth cap on the server's side of both connections,
// with WAL being generated; the backup still restores.
func TestSlowNetwork(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{Settings: map[string]string{"wal_sender_timeout": "5s"}})
	c.PgbenchInit(t, 1)
	p, dsn := proxyTo(t, c)
	addToxic(t, p, `{"name":"lat","type":"latency","stream":"downstream","toxicity":1,"attributes":{"latency":30,"jitter":10}}`)
	addToxic(t, p, `{"name":"up","type":"latency","stream":"upstream","toxicity":1,"attributes":{"latency":30}}`)
	addToxic(t, p, `{"name":"bw","type":"bandwidth","stream":"downstream","toxicity":1,"attributes":{"rate":40000}}`)
	load := c.StartLoad(t, 2)
	stop := walSwitcher(t, c, 500*time.Millisecond)
	path, res, err := backupToFile(t, context.Background(), nil, mux.Config{ConnString: dsn, Checkpoint: mux.CheckpointFast})
	stop()
	_ = load.Stop()
	if err != nil {
		t.Fatalf("backup through a slow network: %v", err)
	}
	t.Logf("result: %+v", res)
	checkLayout(t, pgtest.ListTar(t, path))
	c.RestoreDrill(t, path, pgtest.Drill{Pgbench: true})
	assertNothingLeft(t, c)
}

// TestConnectionReset: the proxy resets every connection mid-backup; Backup fails with an
// error, promptly, and nothing is left on the server.
func TestConnectionReset(t *testing.T) {
	c := pgtest.Start(t, pgtest.Options{})
	c.PgbenchInit(t, 2)
	p, dsn := proxyTo(t, c)
	addToxic(t, p, `{"name":"bw","type":"bandwidth","stream":"downstream","toxicity":1,"attributes":{"rate":5000}}`)
	go func() {
		time.Sleep(1500 * time.Millisecond)
		_, _ = p.Toxics.AddToxicJson(strings.NewReader(`{"name":"rst","type":"reset_peer","stream":"downstream","toxicity":1,"attributes":{"timeout":0}}`))
		p.Stop() // closes the live connections too
	}()
	start := time.Now()
	var discard failingWriter
	discard.after = 1 << 40
	_, err := mux.Backup(context.Background(), &discard, mux.Config{ConnString: dsn, Checkpoint: mux.CheckpointFast})
	if err == nil {
		t.Fatal("backup succeeded through reset connections")
	}
	t.Logf("error after %v: %v", time.Since(start), err)
	if time.Since(start) > 30*time.Second {
		t.Fatalf("took %v to notice the reset", time.Since(start))
	}
	assertNothingLeft(t, c)
}
