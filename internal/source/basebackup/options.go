package basebackup

import (
	"fmt"
	"strconv"
	"strings"
)

// Compression limits the server accepts (src/common/compression.c, zstd's own bounds).
const (
	zstdMinLevel   = -131072 // ZSTD_minCLevel()
	zstdMaxLevel   = 22      // ZSTD_maxCLevel()
	zstdMaxWorkers = 200     // ZSTDMT_NBWORKERS_MAX on 64-bit builds
)

// ParseCompression turns a server compression setting into BASE_BACKUP's COMPRESSION method
// ("" for none) and COMPRESSION_DETAIL ("" for the server's defaults). Accepted:
//
//	"", "none"
//	"lz4", "lz4:N", "lz4:level=N"                      N in 1..12
//	"zstd", "zstd:N", "zstd:level=N[,workers=W][,long]"  N in -131072..22, W in 0..200
//
// zstd's workers have the server compress with W threads (PostgreSQL's ZSTD_c_nbWorkers);
// long (16+) turns on long-distance matching.
func ParseCompression(s string) (method, detail string, err error) {
	name, spec, hasSpec := strings.Cut(strings.ToLower(strings.TrimSpace(s)), ":")
	switch name {
	case "", "none":
		if hasSpec {
			return "", "", fmt.Errorf("server compression %q: no level goes with none", s)
		}
		return "", "", nil
	case "lz4", "zstd":
	case "gzip":
		return "", "", fmt.Errorf("server compression %q: walweave decompresses lz4 and zstd from the server, not gzip; use zstd or lz4 (and compress the output stream with any tool)", s)
	default:
		return "", "", fmt.Errorf("server compression %q is not none, lz4[:LEVEL] or zstd[:level=N][,workers=N]", s)
	}
	if !hasSpec {
		return name, "", nil
	}
	if spec == "" {
		return "", "", fmt.Errorf("server compression %q: empty specification after %q", s, name+":")
	}
	var parts []string
	if n, err := strconv.Atoi(spec); err == nil { // a bare integer is the level
		spec = "level=" + strconv.Itoa(n)
	}
	seen := map[string]bool{}
	for _, kv := range strings.Split(spec, ",") {
		key, val, hasVal := strings.Cut(strings.TrimSpace(kv), "=")
		if seen[key] {
			return "", "", fmt.Errorf("server compression %q: %s given twice", s, key)
		}
		seen[key] = true
		switch {
		case key == "level":
			n, err := strconv.Atoi(val)
			lo, hi := 1, 12
			if name == "zstd" {
				lo, hi = zstdMinLevel, zstdMaxLevel
			}
			if !hasVal || err != nil || n < lo || n > hi {
				return "", "", fmt.Errorf("server compression %q: the %s level must be an integer in %d..%d", s, name, lo, hi)
			}
			parts = append(parts, "level="+strconv.Itoa(n))
		case key == "workers" && name == "zstd":
			n, err := strconv.Atoi(val)
			if !hasVal || err != nil || n < 0 || n > zstdMaxWorkers {
				return "", "", fmt.Errorf("server compression %q: zstd workers must be an integer in 0..%d", s, zstdMaxWorkers)
			}
			parts = append(parts, "workers="+strconv.Itoa(n))
		case key == "long" && name == "zstd":
			if hasVal {
				on, err := strconv.ParseBool(val)
				if err != nil {
					return "", "", fmt.Errorf("server compression %q: long must be true or false", s)
				}
				if !on {
					continue
				}
			}
			parts = append(parts, "long")
		case key == "workers" || key == "long":
			return "", "", fmt.Errorf("server compression %q: %s does not take %s (only zstd does)", s, name, key)
		default:
			return "", "", fmt.Errorf("server compression %q: unknown setting %q (level, and for zstd workers and long)", s, key)
		}
	}
	return name, strings.Join(parts, ","), nil
}

// MaxRateKB maps bytes/s to BASE_BACKUP's MAX_RATE in kB/s (32..1048576); 0 = unlimited.
func MaxRateKB(bytesPerSec int64) int64 {
	if bytesPerSec <= 0 {
		return 0
	}
	kb := (bytesPerSec + 1023) / 1024
	if kb < 32 {
		kb = 32
	}
	if kb > 1048576 {
		return 0 // above the server's maximum: no limit is the closest
	}
	return kb
}
