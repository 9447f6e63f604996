package source

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// ChecksumError is the error of a backup whose server reported data checksum failures
// (SQLSTATE XX001 after the stream, or pages a client-side reader found bad). mux.Backup
// returns it and leaves the stream unfinished (no manifest, no trailer), as with every failed
// backup.
type ChecksumError struct {
	// Files lists the files with failures, as the server named them (e.g. "./base/5/16384").
	Files []string
	// Failures is the total count the server reported (0 if it did not say).
	Failures int
	// Warnings are the server's WARNING messages about the failures, in order.
	Warnings []string
	// Message is the server's final error message.
	Message string
}

func (e *ChecksumError) Error() string {
	files := strings.Join(e.Files, ", ")
	if files == "" {
		files = "(files not named by the server)"
	}
	n := ""
	if e.Failures > 0 {
		n = fmt.Sprintf("%d ", e.Failures)
	}
	return fmt.Sprintf("source: the server reported %sdata checksum failures in %s: %s; the data files are corrupt on the server (check them with pg_amcheck or pg_checksums), or back up with checksum verification off", n, files, e.Message)
}

var (
	checksumFileRE  = regexp.MustCompile(`checksum verification failed in file "([^"]+)"`)
	checksumFileRE2 = regexp.MustCompile(`(?:file "([^"]+)" has a total of|in file "([^"]+)" will not be reported)`)
	checksumTotalRE = regexp.MustCompile(`^(\d+) total checksum verification failures`)
)

// NoteWarning records a server WARNING about checksums; it reports whether the
// message was one.
func (e *ChecksumError) NoteWarning(msg string) bool {
	var file string
	if m := checksumFileRE.FindStringSubmatch(msg); m != nil {
		file = m[1]
	} else if m := checksumFileRE2.FindStringSubmatch(msg); m != nil {
		file = m[1] + m[2]
	} else if m := checksumTotalRE.FindStringSubmatch(msg); m != nil {
		fmt.Sscan(m[1], &e.Failures)
	} else {
		return false
	}
	e.Warnings = append(e.Warnings, msg)
	if file != "" {
		i := sort.SearchStrings(e.Files, file)
		if i == len(e.Files) || e.Files[i] != file {
			e.Files = append(e.Files, "")
			copy(e.Files[i+1:], e.Files[i:])
			e.Files[i] = file
		}
	}
	return true
}
