package pgrepl

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/walweave/walweave/pgformat"
)

// splitUnit splits "16MB" into (16, "MB"), allowing spaces between the number and the unit.
func splitUnit(s string) (num, unit string) {
	s = strings.TrimSpace(s)
	i := 0
	if i < len(s) && (s[i] == '-' || s[i] == '+') {
		i++
	}
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
		i++
	}
	return s[:i], strings.TrimSpace(s[i:])
}

// ParseWALSegmentSize parses the value of SHOW wal_segment_size ("16MB", "1GB", "1024kB", or
// a plain number of bytes) and returns the segment size in bytes. Like pg_basebackup it
// insists on a power of two from 1 MiB to 1 GiB.
func ParseWALSegmentSize(s string) (int, error) {
	num, unit := splitUnit(s)
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || num == "" {
		return 0, fmt.Errorf("pgrepl: invalid wal_segment_size %q: want a number of bytes with an optional unit (B, kB, MB, GB), e.g. 16MB", s)
	}
	var mult int64
	switch unit {
	case "", "B":
		mult = 1
	case "kB":
		mult = 1 << 10
	case "MB":
		mult = 1 << 20
	case "GB":
		mult = 1 << 30
	case "TB":
		mult = 1 << 40
	default:
		return 0, fmt.Errorf("pgrepl: invalid wal_segment_size %q: unknown unit %q (want B, kB, MB or GB)", s, unit)
	}
	if n <= 0 || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("pgrepl: invalid wal_segment_size %q: must be a power of two between 1MB and 1GB", s)
	}
	size := n * mult
	if size > math.MaxInt || !pgformat.ValidWALSegmentSize(int(size)) {
		return 0, fmt.Errorf("pgrepl: invalid wal_segment_size %q (%d bytes): must be a power of two between 1MB and 1GB", s, size)
	}
	return int(size), nil
}

// ParseDuration parses a time setting as SHOW prints it, with PostgreSQL's time units: "us",
// "ms", "s", "min", "h" and "d" ("60s", "500ms", "1min"). A number without a unit is taken as
// milliseconds (the base unit of wal_sender_timeout and most other timeouts); "0" is 0.
// Negative values (a disabled setting such as -1) are rejected.
func ParseDuration(s string) (time.Duration, error) {
	num, unit := splitUnit(s)
	if num == "" || strings.IndexFunc(unit, unicode.IsSpace) >= 0 {
		return 0, fmt.Errorf("pgrepl: invalid duration %q: want a number with an optional unit (us, ms, s, min, h, d), e.g. 60s", s)
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("pgrepl: invalid duration %q: want a number with an optional unit (us, ms, s, min, h, d), e.g. 60s", s)
	}
	if v < 0 {
		return 0, fmt.Errorf("pgrepl: invalid duration %q: negative", s)
	}
	var unitDur time.Duration
	switch unit {
	case "us":
		unitDur = time.Microsecond
	case "", "ms":
		unitDur = time.Millisecond
	case "s":
		unitDur = time.Second
	case "min":
		unitDur = time.Minute
	case "h":
		unitDur = time.Hour
	case "d":
		unitDur = 24 * time.Hour
	default:
		return 0, fmt.Errorf("pgrepl: invalid duration %q: unknown unit %q (want us, ms, s, min, h or d)", s, unit)
	}
	d := v * float64(unitDur)
	if d > math.MaxInt64 {
		return 0, fmt.Errorf("pgrepl: invalid duration %q: too large", s)
	}
	return time.Duration(d), nil
}

// ServerVersionNum returns the server's version as a number like server_version_num (150018
// for 15.18, 160000 for 16beta1), from the server_version parameter the server reported at
// connection start. It returns 0 when the parameter is missing or cannot be parsed.
func ServerVersionNum(conn *pgconn.PgConn) int {
	return parseServerVersion(conn.ParameterStatus("server_version"))
}

func parseServerVersion(s string) int {
	// "15.18 (Debian 15.18-1.pgdg120+1)", "16beta1", "9.6.24"
	var parts [3]int
	n := 0
	i := 0
	for n < 3 {
		j := i
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		if j == i {
			break
		}
		v, err := strconv.Atoi(s[i:j])
		if err != nil {
			return 0
		}
		parts[n] = v
		n++
		if j >= len(s) || s[j] != '.' {
			break
		}
		i = j + 1
	}
	switch {
	case n == 0:
		return 0
	case parts[0] >= 10:
		return parts[0]*10000 + parts[1]
	default:
		return parts[0]*10000 + parts[1]*100 + parts[2]
	}
}
