package pgrepl

import (
	"strings"
	"testing"
	"time"
)

func TestParseWALSegmentSize(t *testing.T) {
	good := map[string]int{
		"16MB": 16 << 20, "1MB": 1 << 20, "1GB": 1 << 30, "64MB": 64 << 20, "1024kB": 1 << 20,
		"2048kB": 2 << 20, "16777216": 16 << 20, "16777216B": 16 << 20, " 16MB ": 16 << 20, "16 MB": 16 << 20,
	}
	for in, want := range good {
		got, err := ParseWALSegmentSize(in)
		if err != nil || got != want {
			t.Errorf("ParseWALSegmentSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	bad := map[string]string{
		"":                       "invalid wal_segment_size",
		"MB":                     "invalid wal_segment_size",
		"16XB":                   "unknown unit",
		"16mb":                   "unknown unit",
		"512kB":                  "power of two between 1MB and 1GB",
		"2GB":                    "power of two between 1MB and 1GB",
		"24MB":                   "power of two between 1MB and 1GB",
		"0":                      "power of two",
		"-16MB":                  "power of two",
		"1.5MB":                  "invalid wal_segment_size",
		"1TB":                    "power of two",
		"99999999999999999999MB": "invalid wal_segment_size",
	}
	for in, want := range bad {
		got, err := ParseWALSegmentSize(in)
		if err == nil {
			t.Errorf("ParseWALSegmentSize(%q) = %d, want an error", in, got)
		} else if !strings.Contains(err.Error(), want) {
			t.Errorf("ParseWALSegmentSize(%q) error %q, want it to contain %q", in, err, want)
		}
	}
}

func TestParseDuration(t *testing.T) {
	good := map[string]time.Duration{
		"60s": time.Minute, "2s": 2 * time.Second, "500ms": 500 * time.Millisecond, "1min": time.Minute,
		"0": 0, "0ms": 0, "1h": time.Hour, "2d": 48 * time.Hour, "250us": 250 * time.Microsecond,
		"1500": 1500 * time.Millisecond, "1.5s": 1500 * time.Millisecond, "10 s": 10 * time.Second,
	}
	for in, want := range good {
		got, err := ParseDuration(in)
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "s", "1 m", "10sec", "-1", "-5s", "1e400s", "abc", "1.2.3s"} {
		if got, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) = %v, want an error", in, got)
		}
	}
}

func TestParseServerVersion(t *testing.T) {
	for in, want := range map[string]int{
		"15.18 (Debian 15.18-1.pgdg120+1)": 150018, "15.18": 150018, "16beta1": 160000, "17.0": 170000,
		"17devel": 170000, "9.6.24": 90624, "14.2": 140002, "": 0, "x": 0,
	} {
		if got := parseServerVersion(in); got != want {
			t.Errorf("parseServerVersion(%q) = %d, want %d", in, got, want)
		}
	}
}
