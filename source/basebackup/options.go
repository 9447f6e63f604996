package basebackup

import (
	"fmt"
	"strconv"
	"strings"
)

// ParseCompression turns a server compression setting ("lz4", "lz4:N", "none", "") into BASE_BACKUP's COMPRESSION method
// ("" for none) and COMPRESSION_DETAIL ("" for the server's default level).
func ParseCompression(s string) (method, detail string, err error) {
	name, level, hasLevel := strings.Cut(strings.ToLower(strings.TrimSpace(s)), ":")
	switch name {
	case "", "none":
		if hasLevel {
			return "", "", fmt.Errorf("server compression %q: no level goes with none", s)
		}
		return "", "", nil
	case "lz4":
	case "gzip", "zstd":
		return "", "", fmt.Errorf("server compression %q: walweave decompresses only lz4 from the server; use lz4 (and compress the output stream with any tool)", s)
	default:
		return "", "", fmt.Errorf("server compression %q is not none or lz4[:LEVEL]", s)
	}
	if !hasLevel {
		return "lz4", "", nil
	}
	level = strings.TrimPrefix(level, "level=")
	n, err := strconv.Atoi(level)
	if err != nil || n < 1 || n > 12 {
		return "", "", fmt.Errorf("server compression %q: the lz4 level must be 1..12", s)
	}
	return "lz4", "level=" + strconv.Itoa(n), nil
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
