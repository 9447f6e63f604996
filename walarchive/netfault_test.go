package walarchive

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/Shopify/toxiproxy/v2/collectors"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

func init() { zerolog.SetGlobalLevel(zerolog.Disabled) }

// A network cut (a Toxiproxy black hole on both directions) is noticed by the progress timeout;
// the archiver reconnects with backoff once the network is back (the old walsender holds the
// slot until wal_sender_timeout: "slot in use" is retried too) and leaves no hole.
func TestArchiveNetworkCut(t *testing.T) {
	c := newCluster(t, nil)
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	srv.Metrics.ProxyMetrics = collectors.NewProxyMetricCollectors()
	p := toxiproxy.NewProxy(srv, "pg", "127.0.0.1:0", fmt.Sprintf("127.0.0.1:%d", c.Port))
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	_, port, _ := strings.Cut(p.Listen, ":")
	dsn := strings.Replace(c.DSN(), fmt.Sprintf("port=%d", c.Port), "port="+port, 1) + " connect_timeout=3"

	dir := t.TempDir()
	sink, err := NewDirSink(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg := baseConfig(t, dsn, "netcut", sink)
	cfg.ProgressTimeout = 2 * time.Second
	r := start(t, cfg)
	writeWAL(t, c, 2)
	waitFlushed(t, r, currentLSN(t, c).SegmentStart(1<<20), time.Minute)
	for _, dir := range []string{"downstream", "upstream"} {
		if _, err := p.Toxics.AddToxicJson(strings.NewReader(`{"name":"cut_` + dir + `","type":"timeout","stream":"` + dir + `","toxicity":1,"attributes":{"timeout":0}}`)); err != nil {
			t.Fatal(err)
		}
	}
	writeWAL(t, c, 2)
	// The cut is noticed within the progress timeout (and a status interval).
	deadline := time.Now().Add(cfg.ProgressTimeout + 10*time.Second)
	for r.a.Status().Reconnects == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the cut was not noticed: %+v", r.a.Status())
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, dir := range []string{"downstream", "upstream"} {
		if err := p.Toxics.RemoveToxic(context.Background(), "cut_"+dir); err != nil {
			t.Fatal(err)
		}
	}
	writeWAL(t, c, 1)
	waitFlushed(t, r, currentLSN(t, c).SegmentStart(1<<20), 2*time.Minute)
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	compareWithServer(t, c, dir)
	checkVerify(t, dir)
}
