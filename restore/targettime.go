package restore

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// targetTimeRE matches the timestamp forms walweave accepts for recovery_target_time, a
// subset of what PostgreSQL's timestamptz input reads: an ISO date, optionally a time
// (HH:MM[:SS[.fraction]], after a space or "T"), optionally a zone: Z, +HH, +HH:MM, +HHMM (or
// -), or a zone name after a space (UTC, Europe/Paris, EST5EDT, ...).
var targetTimeRE = regexp.MustCompile(`^(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?)?` +
	`(?:\s*(Z|[+-]\d{2}(?::?\d{2})?)|\s+([A-Za-z][A-Za-z0-9_+\-/]*))?$`)

// ValidateTargetTime checks a recovery_target_time before the restore starts, so that a
// value PostgreSQL would refuse (only when the restored server starts) is refused at once.
// PostgreSQL rejects the special values now, today, tomorrow and yesterday there.
func ValidateTargetTime(s string) error {
	v := strings.TrimSpace(s)
	switch strings.ToLower(v) {
	case "now", "today", "tomorrow", "yesterday", "epoch", "infinity", "-infinity", "allballs":
		return fmt.Errorf("recovery target time %q: PostgreSQL does not accept special values here; give a timestamp with its zone, e.g. %s", s, time.Now().UTC().Add(-24*time.Hour).Format("2006-01-02 15:04:05+00"))
	}
	m := targetTimeRE.FindStringSubmatch(v)
	if m == nil {
		return fmt.Errorf("recovery target time %q is not a timestamp: give YYYY-MM-DD HH:MM:SS[.ffffff] with a zone (+00, +02:00, Z or a zone name), e.g. %s", s, time.Now().UTC().Format("2006-01-02 15:04:05+00"))
	}
	num := func(i int) int {
		if m[i] == "" {
			return 0
		}
		n, _ := strconv.Atoi(m[i])
		return n
	}
	y, mo, d, h, mi, sec := num(1), num(2), num(3), num(4), num(5), num(6)
	t := time.Date(y, time.Month(mo), d, h, mi, sec, 0, time.UTC)
	if mo < 1 || mo > 12 || t.Day() != d || h > 24 || mi > 59 || sec > 60 || (h == 24 && (mi != 0 || sec != 0)) {
		return fmt.Errorf("recovery target time %q is not a valid date and time", s)
	}
	if m[8] != "" && m[8] != "Z" {
		z := strings.ReplaceAll(m[8][1:], ":", "")
		if zh, _ := strconv.Atoi(z[:2]); zh > 15 {
			return fmt.Errorf("recovery target time %q: zone offset %s is out of range", s, m[8])
		}
		if len(z) == 4 {
			if zm, _ := strconv.Atoi(z[2:]); zm > 59 {
				return fmt.Errorf("recovery target time %q: zone offset %s is out of range", s, m[8])
			}
		}
	}
	if m[9] != "" && !strings.EqualFold(m[9], "UTC") && !strings.EqualFold(m[9], "GMT") {
		if _, err := time.LoadLocation(m[9]); err != nil && !zoneAbbrevRE.MatchString(m[9]) && !strings.Contains(m[9], "/") {
			return fmt.Errorf("recovery target time %q: unknown time zone %q", s, m[9])
		}
	}
	return nil
}

// zoneAbbrevRE accepts zone abbreviations (CET, PST, ...) that time.LoadLocation does not know
// but PostgreSQL may (zone names with a "/" are accepted too: this machine may lack tzdata).
var zoneAbbrevRE = regexp.MustCompile(`^[A-Za-z]{2,6}$`)
