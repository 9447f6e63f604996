package main

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// stats summarises one contender's runs in a set.
type stats struct {
	ok, failed         int
	wallMed            float64 // seconds
	wallMin, wallMax   float64
	mibPerSec          float64 // median of per-run database size / wall
	cpuMed             float64 // seconds, user+sys
	rssMax             float64 // MiB, highest peak over the runs
	rssMed             float64 // MiB
	cpuPerGiB          float64 // client CPU seconds per GiB of database
	srvCPUMed          float64 // seconds, server processes; NaN when not measured
	srvPerGiB          float64 // server CPU seconds per GiB of database; NaN when not measured
	firstErr           error
	walls, cpus, rates []float64
}

// summarize computes a contender's stats over the set's rounds (failed runs left out).
func (s *set) summarize(key string) stats {
	var st stats
	var rss, cpuPerGiB, srv, srvPerGiB []float64
	for _, r := range s.rounds {
		smp, ok := r.samples[key]
		if !ok {
			continue
		}
		if smp.err != nil {
			st.failed++
			if st.firstErr == nil {
				st.firstErr = smp.err
			}
			continue
		}
		st.ok++
		w := smp.wall.Seconds()
		st.walls = append(st.walls, w)
		st.cpus = append(st.cpus, smp.cpu.Seconds())
		st.rates = append(st.rates, float64(r.dbSize)/(1<<20)/w)
		rss = append(rss, float64(smp.maxRSS)/1024)
		if smp.srvCPU > 0 {
			srv = append(srv, smp.srvCPU.Seconds())
			srvPerGiB = append(srvPerGiB, smp.srvCPU.Seconds()/(float64(r.dbSize)/(1<<30)))
		}
		cpuPerGiB = append(cpuPerGiB, smp.cpu.Seconds()/(float64(r.dbSize)/(1<<30)))
	}
	if st.ok == 0 {
		return st
	}
	st.wallMed, st.wallMin, st.wallMax = median(st.walls), minOf(st.walls), maxOf(st.walls)
	st.mibPerSec, st.cpuMed, st.cpuPerGiB = median(st.rates), median(st.cpus), median(cpuPerGiB)
	st.rssMax, st.rssMed = maxOf(rss), median(rss)
	st.srvCPUMed, st.srvPerGiB = median(srv), median(srvPerGiB)
	return st
}

// ratio is num/den computed round by round, for wall time, client CPU and server CPU.
type ratio struct {
	num, den                string
	wall, cpu, srv          []float64
	wallMed, cpuMed, srvMed float64
}

// pairRatios computes num/den in every round where both succeeded.
func (s *set) pairRatios(num, den string) ratio {
	rt := ratio{num: num, den: den}
	for _, r := range s.rounds {
		a, okA := r.samples[num]
		b, okB := r.samples[den]
		if !okA || !okB || a.err != nil || b.err != nil || b.wall <= 0 {
			continue
		}
		rt.wall = append(rt.wall, a.wall.Seconds()/b.wall.Seconds())
		if b.cpu > 0 {
			rt.cpu = append(rt.cpu, a.cpu.Seconds()/b.cpu.Seconds())
		}
		if a.srvCPU > 0 && b.srvCPU > 0 {
			rt.srv = append(rt.srv, a.srvCPU.Seconds()/b.srvCPU.Seconds())
		}
	}
	rt.wallMed, rt.cpuMed, rt.srvMed = median(rt.wall), median(rt.cpu), median(rt.srv)
	return rt
}

// ratioPairs are the ratios the report shows, when both sides ran.
// (A-jN/A is the cost of --jobs per byte; X/X@base compares with the -baseline binary.)
var ratioPairs = [][2]string{{"A", "B"}, {"A", "C"}, {"A", "D"}, {"A-lz4", "B"}, {"A-srvlz4", "B"}, {"A-srvlz4", "D"},
	{"A", "A-j2"}, {"A", "A-j4"}, {"A", "A-j8"}, {"A", "A-srvlz4"}, {"A", "A-srvzstd"},
	{"A-j2", "A"}, {"A-j4", "A"}, {"A-j8", "A"},
	{"A", "A@base"}, {"A-j2", "A-j2@base"}, {"A-j4", "A-j4@base"}, {"A-j8", "A-j8@base"}, {"A-j4@base", "A@base"}}

// renderReport renders the whole Markdown report.
func renderReport(m *machine, sets []*set) string {
	var b strings.Builder
	fmt.Fprintf(&b, "## walweave vs pg_basebackup (%s)\n\n", m.date.Format("2006-01-02 15:04 UTC"))
	renderMachine(&b, m)
	for _, s := range sets {
		renderSet(&b, s)
	}
	return b.String()
}

// renderMachine writes the machine and settings lines.
func renderMachine(b *strings.Builder, m *machine) {
	server := "scratch cluster from internal/pgtest (fsync=off, shared_buffers=64MB, data checksums on), TCP on 127.0.0.1"
	if !m.scratch {
		server = "server given with -d"
	}
	fmt.Fprintf(b, "- Machine: %s, %d cores, %.1f GiB RAM; load average %s at start, %s at end\n",
		m.cpu, m.cores, float64(m.ramBytes)/(1<<30), m.loadBefore, m.loadAfter)
	fmt.Fprintf(b, "- PostgreSQL %s, %s; walweave built with %s\n", m.pgVersion, server, m.goVersion)
	fmt.Fprintf(b, "- pgbench scale %d: %s in all databases (pg_database_size sum), read from the page cache\n",
		m.scale, mib(m.dbSize))
	fmt.Fprintf(b, "- %d measured rounds after %d warm-up round(s); each round runs every contender once, in the order of the table rotated by one place per round (A B C, B C A, ...)\n",
		m.runs, m.warmup)
	fmt.Fprintf(b, "- MiB/s is database size / wall time; client CPU is user+sys of the client process (rusage, children included); peak RSS is ru_maxrss; server CPU is user+sys of the postmaster and its children during the run (/proc, scratch cluster only)\n")
	if m.link != "" {
		fmt.Fprintf(b, "- Link: %s; A/X wall ratios above 1 are X's speed-up over A\n", m.link)
	}
	b.WriteString("\n")
}

// renderSet writes one set's tables and target checks.
func renderSet(b *strings.Builder, s *set) {
	fmt.Fprintf(b, "### %s\n\n", s.name)
	if s.loaded {
		fmt.Fprintf(b, "Load during the measured rounds: %.0f commits/s, %.1f MiB/s of WAL.\n\n",
			s.loadTPS, s.walRate/(1<<20))
	}
	b.WriteString("| | command | wall median | min | max | MiB/s | client CPU s | client CPU s/GiB | server CPU s | server CPU s/GiB | peak RSS MiB (median / max) | failed |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, key := range s.keys {
		renderRow(b, key, s.summarize(key))
	}
	b.WriteString("\n")
	renderRatios(b, s)
	renderTargets(b, s)
	renderFailures(b, s)
}

// renderRatios writes the ratio table for the pairs that both ran.
func renderRatios(b *strings.Builder, s *set) {
	header := false
	for _, p := range ratioPairs {
		if !s.has(p[0]) || !s.has(p[1]) {
			continue
		}
		if !header {
			b.WriteString("Ratios, computed round by round, then the median (min–max):\n\n")
			b.WriteString("| ratio | wall | client CPU | server CPU |\n|---|---:|---:|---:|\n")
			header = true
		}
		rt := s.pairRatios(p[0], p[1])
		srv := "–"
		if len(rt.srv) > 0 {
			srv = spread(rt.srvMed, rt.srv)
		}
		fmt.Fprintf(b, "| %s/%s | %s | %s | %s |\n", p[0], p[1], spread(rt.wallMed, rt.wall), spread(rt.cpuMed, rt.cpu), srv)
	}
	if header {
		b.WriteString("\n")
	}
}

// renderRow writes one contender's row.
func renderRow(b *strings.Builder, key string, st stats) {
	desc := find(key).desc
	if st.ok == 0 {
		fmt.Fprintf(b, "| %s | `%s` | – | – | – | – | – | – | – | – | – | %d |\n", key, desc, st.failed)
		return
	}
	srv, srvPerGiB := "–", "–"
	if !math.IsNaN(st.srvCPUMed) {
		srv, srvPerGiB = fmt.Sprintf("%.2f", st.srvCPUMed), fmt.Sprintf("%.2f", st.srvPerGiB)
	}
	fmt.Fprintf(b, "| %s | `%s` | %.2f s | %.2f | %.2f | %.0f | %.2f | %.2f | %s | %s | %.1f / %.1f | %d |\n",
		key, desc, st.wallMed, st.wallMin, st.wallMax, st.mibPerSec, st.cpuMed, st.cpuPerGiB, srv, srvPerGiB,
		st.rssMed, st.rssMax, st.failed)
}

// target is one goal from the README, checked against a set.
type target struct {
	what  string
	value float64
	limit float64
	ok    bool // the value could be computed
}

// targets are the goals that apply to the set.
func (s *set) targets() []target {
	var ts []target
	if s.link {
		// The loopback targets (A against pg_basebackup) do not apply through the link.
		if s.has("A") && s.has("A-j4") {
			// A throughput target: the limit is on the inverse ratio, A-j4 / A wall <= 1/3.5.
			rt := s.pairRatios("A-j4", "A")
			ts = append(ts, target{"A-j4/A wall on the capped link (1/3.5 = 0.29 is --jobs 4 at 3.5x BASE_BACKUP's throughput)", rt.wallMed, 1 / 3.5, len(rt.wall) > 0})
		}
		if s.has("A") && s.has("A-j8") {
			rt := s.pairRatios("A-j8", "A")
			ts = append(ts, target{"A-j8/A wall on the capped link (1/6 = 0.17 is --jobs 8 at 6x BASE_BACKUP's throughput)", rt.wallMed, 1.0 / 6, len(rt.wall) > 0})
		}
		if s.has("A-j4") {
			st := s.summarize("A-j4")
			ts = append(ts, target{"peak RSS of A-j4, MiB (max over runs; 16 MiB of it is the fetch window)", st.rssMax, 64, st.ok > 0})
		}
		return ts
	}
	if s.has("A") && s.has("B") {
		limit := 0.75
		if s.loaded {
			limit = 1.0
		}
		rt := s.pairRatios("A", "B")
		ts = append(ts, target{"A/B wall (median of per-round ratios)", rt.wallMed, limit, len(rt.wall) > 0})
	}
	if s.loaded {
		return ts
	}
	if s.has("A") && s.has("D") {
		rt := s.pairRatios("A", "D")
		ts = append(ts, target{"A/D wall", rt.wallMed, 1.25, len(rt.wall) > 0})
	}
	if s.has("A") && s.has("B") {
		a, bb := s.summarize("A"), s.summarize("B")
		ts = append(ts, target{"client CPU of A / client CPU of B (medians)", a.cpuMed / bb.cpuMed, 1.0, a.ok > 0 && bb.ok > 0})
	}
	if s.has("A") {
		a := s.summarize("A")
		ts = append(ts, target{"peak RSS of A, MiB (max over runs)", a.rssMax, 48, a.ok > 0})
	}
	if s.has("A") && s.has("A-j4") {
		// The --jobs goals: --jobs 4 at about BASE_BACKUP mode's cost per byte, and at least 0.8 of
		// its speed on an uncapped loopback (A-j4/A wall <= 1/0.8).
		rt := s.pairRatios("A-j4", "A")
		ts = append(ts, target{"A-j4/A client CPU per GiB (median of per-round ratios)", rt.cpuMed, 1.5, len(rt.cpu) > 0},
			target{"A-j4/A server CPU per GiB (median of per-round ratios)", rt.srvMed, 1.5, len(rt.srv) > 0},
			target{"A-j4/A wall, uncapped (1.25 is --jobs 4 at 0.8 of BASE_BACKUP's speed)", rt.wallMed, 1.25, len(rt.wall) > 0})
		j4 := s.summarize("A-j4")
		ts = append(ts, target{"peak RSS of A-j4, MiB (max over runs)", j4.rssMax, 64, j4.ok > 0})
	}
	return ts
}

// renderTargets writes the target checks.
func renderTargets(b *strings.Builder, s *set) {
	ts := s.targets()
	if len(ts) == 0 {
		return
	}
	b.WriteString("Targets:\n\n")
	for _, t := range ts {
		verdict := "not measured"
		if t.ok {
			verdict = "**missed**"
			if t.value <= t.limit {
				verdict = "met"
			}
		}
		fmt.Fprintf(b, "- %s: %.2f, target <= %.2f: %s\n", t.what, t.value, t.limit, verdict)
	}
	b.WriteString("\n")
}

// renderFailures lists the first error of each contender that failed.
func renderFailures(b *strings.Builder, s *set) {
	for _, key := range s.keys {
		if st := s.summarize(key); st.firstErr != nil {
			fmt.Fprintf(b, "%s failed %d time(s), first error: `%s`\n\n", key, st.failed,
				strings.ReplaceAll(st.firstErr.Error(), "\n", " "))
		}
	}
}

// has reports whether the set runs the contender.
func (s *set) has(key string) bool {
	for _, k := range s.keys {
		if k == key {
			return true
		}
	}
	return false
}

// spread formats a median with the range of the values.
func spread(med float64, v []float64) string {
	if len(v) == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f (%.2f–%.2f)", med, minOf(v), maxOf(v))
}

// mib formats a byte count.
func mib(n int64) string {
	if n >= 1<<30 {
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	}
	return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
}

// median of v (the mean of the middle two for an even count); NaN for none.
func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// minOf is the smallest of v (+Inf for none).
func minOf(v []float64) float64 {
	m := math.Inf(1)
	for _, x := range v {
		m = math.Min(m, x)
	}
	return m
}

// maxOf is the largest of v (-Inf for none).
func maxOf(v []float64) float64 {
	m := math.Inf(-1)
	for _, x := range v {
		m = math.Max(m, x)
	}
	return m
}
