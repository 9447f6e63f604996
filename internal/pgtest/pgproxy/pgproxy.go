// Package pgproxy puts a Toxiproxy proxy (in-process) in front of a test cluster, for the
// network-fault tests: latency, bandwidth caps, a proxy that stops forwarding without closing.
package pgproxy

import (
	"fmt"
	"strings"
	"testing"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/Shopify/toxiproxy/v2/collectors"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/walweave/walweave/internal/pgtest"
)

// To starts a proxy to c's TCP port, stopped by t.Cleanup, and returns it with c.DSN() pointed
// at it.
func To(t testing.TB, c *pgtest.Cluster) (*toxiproxy.Proxy, string) {
	t.Helper()
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	srv.Metrics.ProxyMetrics = collectors.NewProxyMetricCollectors()
	p := toxiproxy.NewProxy(srv, "pg", "127.0.0.1:0", fmt.Sprintf("127.0.0.1:%d", c.Port))
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	_, port, _ := strings.Cut(p.Listen, ":")
	return p, strings.Replace(c.DSN(), fmt.Sprintf("port=%d", c.Port), "port="+port, 1)
}

// AddToxic adds a toxic given as Toxiproxy's JSON, failing the test on error.
func AddToxic(t testing.TB, p *toxiproxy.Proxy, json string) {
	t.Helper()
	if _, err := p.Toxics.AddToxicJson(strings.NewReader(json)); err != nil {
		t.Fatalf("add toxic %s: %v", json, err)
	}
}

// Stall makes p stop forwarding in both directions without closing anything (Toxiproxy's
// timeout toxic with timeout 0): TCP stays alive on both sides, as behind a proxy that hangs.
func Stall(t testing.TB, p *toxiproxy.Proxy) {
	t.Helper()
	AddToxic(t, p, `{"name":"stall-down","type":"timeout","stream":"downstream","toxicity":1,"attributes":{"timeout":0}}`)
	AddToxic(t, p, `{"name":"stall-up","type":"timeout","stream":"upstream","toxicity":1,"attributes":{"timeout":0}}`)
}
