package main

import (
	"bufio"
	"context"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// machine describes where and how the benchmark ran.
type machine struct {
	cpu        string
	cores      int
	ramBytes   int64
	pgVersion  string
	goVersion  string
	scale      int
	runs       int
	warmup     int
	dbSize     int64
	scratch    bool
	date       time.Time
	loadBefore string // /proc/loadavg when the benchmark started
	loadAfter  string
	link       string
}

// describeMachine collects the machine, versions and settings for the report.
func describeMachine(ctx context.Context, srv *server, cfg *config) *machine {
	m := &machine{
		cpu:        cpuModel(),
		cores:      runtime.NumCPU(),
		ramBytes:   memTotal(),
		pgVersion:  srv.serverVersion(ctx),
		goVersion:  runtime.Version(),
		scale:      cfg.scale,
		runs:       cfg.runs,
		warmup:     cfg.warmup,
		scratch:    srv.scratch,
		date:       time.Now().UTC(),
		loadBefore: readLoadAvg(),
		link:       srv.link,
	}
	m.dbSize, _ = srv.databaseSize(ctx)
	return m
}

// cpuModel is the first "model name" of /proc/cpuinfo.
func cpuModel() string {
	if v := procField("/proc/cpuinfo", "model name"); v != "" {
		return v
	}
	return runtime.GOARCH
}

// memTotal is MemTotal of /proc/meminfo in bytes.
func memTotal() int64 {
	f := strings.Fields(procField("/proc/meminfo", "MemTotal"))
	if len(f) == 0 {
		return 0
	}
	kb, _ := strconv.ParseInt(f[0], 10, 64)
	return kb * 1024
}

// procField returns the value of the first "name: value" line of a /proc file.
func procField(path, name string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == name {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// readLoadAvg returns the 1, 5 and 15 minute load averages.
func readLoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
