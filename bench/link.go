package main

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/Shopify/toxiproxy/v2/collectors"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// startLink puts an in-process Toxiproxy TCP proxy in front of the server and points the
// backups' DSN at it. Toxiproxy runs every connection through its own chain of toxics, so
// the bandwidth toxic caps each TCP connection on its own, as a network that caps flows does
// (a cloud instance's per-flow limit, a VPN): one BASE_BACKUP connection gets rateKB kB/s,
// --jobs N gets N times that. latency is added to the server's replies on every connection.
func (s *server) startLink(rateKB int, latency time.Duration) (stop func(), err error) {
	host, port, err := dsnHostPort(s.backupDSN)
	if err != nil {
		return nil, err
	}
	zerolog.SetGlobalLevel(zerolog.Disabled)
	ts := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	ts.Metrics.ProxyMetrics = collectors.NewProxyMetricCollectors()
	p := toxiproxy.NewProxy(ts, "pg", "127.0.0.1:0", net.JoinHostPort(host, port))
	if err := p.Start(); err != nil {
		return nil, fmt.Errorf("start the link proxy: %w", err)
	}
	add := func(json string) error {
		_, err := p.Toxics.AddToxicJson(strings.NewReader(json))
		return err
	}
	var desc []string
	if rateKB > 0 {
		if err := add(fmt.Sprintf(`{"name":"bw","type":"bandwidth","stream":"downstream","toxicity":1,"attributes":{"rate":%d}}`, rateKB)); err != nil {
			p.Stop()
			return nil, err
		}
		desc = append(desc, fmt.Sprintf("%d kB/s per TCP connection (server to client)", rateKB))
	}
	if latency > 0 {
		if err := add(fmt.Sprintf(`{"name":"lat","type":"latency","stream":"downstream","toxicity":1,"attributes":{"latency":%d}}`, latency.Milliseconds())); err != nil {
			p.Stop()
			return nil, err
		}
		desc = append(desc, fmt.Sprintf("%v added to every reply", latency))
	}
	_, lport, _ := net.SplitHostPort(p.Listen)
	s.backupDSN = strings.Replace(s.backupDSN, "port="+port, "port="+lport, 1)
	s.link = "Toxiproxy in the bench process: " + strings.Join(desc, ", ")
	logf("link: %s", s.link)
	return p.Stop, nil
}

// dsnHostPort finds host= and port= in a keyword/value DSN.
func dsnHostPort(dsn string) (host, port string, err error) {
	for _, f := range strings.Fields(dsn) {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "host":
			host = v
		case "port":
			port = v
		}
	}
	if host == "" || port == "" || strings.HasPrefix(host, "/") {
		return "", "", fmt.Errorf("the link needs a TCP DSN with host= and port=, not %q", dsn)
	}
	if _, err := strconv.Atoi(port); err != nil {
		return "", "", fmt.Errorf("port %q: %w", port, err)
	}
	return host, port, nil
}
