package pgformat

import (
	"bytes"
	"strings"
)

// The lines walweave's backup appends to postgresql.auto.conf when the backup has
// tablespaces (the stream contract: tablespaces are re-rooted under pg_tblspc/<oid>/, so the
// server must accept in-place tablespaces, and restore tools that relocate them need the
// original locations):
//
//	# walweave: tablespace 16384 was at /path/to/ts1
//	allow_in_place_tablespaces = on
const (
	// tablespaceCommentPrefix starts the comment line recording a tablespace's original
	// location; tablespaceCommentInfix separates the oid from the location.
	tablespaceCommentPrefix = "# walweave: tablespace "
	tablespaceCommentInfix  = " was at "
	// InPlaceTablespaceLine is the setting line walweave appends. ALTER SYSTEM quotes
	// values, so an unquoted line next to walweave's comments is walweave's own.
	InPlaceTablespaceLine = "allow_in_place_tablespaces = on"
)

// TablespaceLocation is a tablespace recorded in postgresql.auto.conf: its oid (decimal
// text, as the server sends spcoid) and its location on the source server.
type TablespaceLocation struct {
	OID      string
	Location string
}

// AppendTablespaceLines appends walweave's tablespace lines for ts to the content of a
// postgresql.auto.conf (after a newline if content lacks its final one): one comment per
// tablespace, then InPlaceTablespaceLine. With no tablespaces it returns content unchanged.
func AppendTablespaceLines(content []byte, ts []TablespaceLocation) []byte {
	if len(ts) == 0 {
		return content
	}
	if len(content) > 0 && content[len(content)-1] != '\n' {
		content = append(content, '\n')
	}
	for _, t := range ts {
		content = append(content, tablespaceCommentPrefix...)
		content = append(content, t.OID...)
		content = append(content, tablespaceCommentInfix...)
		content = append(content, t.Location...)
		content = append(content, '\n')
	}
	return append(content, InPlaceTablespaceLine+"\n"...)
}

// ParseTablespaceComment parses one walweave tablespace comment line tolerantly (spacing and
// case of the fixed words may vary; the location is the rest of the line, trailing blanks
// and "\r" trimmed).
func ParseTablespaceComment(line string) (TablespaceLocation, bool) {
	s := strings.TrimRight(line, " \t\r\n")
	rest, ok := strings.CutPrefix(s, "#")
	if !ok {
		return TablespaceLocation{}, false
	}
	word := func(w string) bool {
		t := strings.TrimLeft(rest, " \t")
		if len(t) < len(w) || !strings.EqualFold(t[:len(w)], w) {
			return false
		}
		rest = t[len(w):]
		return true
	}
	space := func() bool {
		t := strings.TrimLeft(rest, " \t")
		if len(t) == len(rest) {
			return false
		}
		rest = t
		return true
	}
	if !word("walweave:") || !word("tablespace") || !space() {
		return TablespaceLocation{}, false
	}
	i := 0
	for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
		i++
	}
	oid := rest[:i]
	rest = rest[i:]
	if oid == "" || !space() || !word("was") || !space() || !word("at") || !space() || rest == "" {
		return TablespaceLocation{}, false
	}
	return TablespaceLocation{OID: oid, Location: rest}, true
}

// IsInPlaceTablespaceLine reports whether line is walweave's unquoted
// allow_in_place_tablespaces line ("on" or "true", any spacing around "=").
func IsInPlaceTablespaceLine(line string) bool {
	f := strings.Fields(strings.ReplaceAll(strings.TrimRight(line, "\r\n"), "=", " = "))
	return len(f) == 3 && f[0] == "allow_in_place_tablespaces" && f[1] == "=" && (f[2] == "on" || f[2] == "true")
}

// ParseTablespaceLines returns the tablespaces walweave recorded in a postgresql.auto.conf
// and the content without walweave's lines: its comments, and its unquoted
// allow_in_place_tablespaces line when there was at least one comment (a user's own
// setting, written by ALTER SYSTEM, is quoted and stays). Other lines are kept byte for
// byte.
func ParseTablespaceLines(content []byte) (ts []TablespaceLocation, rest []byte) {
	lines := bytes.SplitAfter(content, []byte("\n"))
	for _, l := range lines {
		if t, ok := ParseTablespaceComment(string(l)); ok {
			ts = append(ts, t)
		}
	}
	rest = make([]byte, 0, len(content))
	for _, l := range lines {
		if _, ok := ParseTablespaceComment(string(l)); ok {
			continue
		}
		if len(ts) > 0 && IsInPlaceTablespaceLine(string(l)) {
			continue
		}
		rest = append(rest, l...)
	}
	return ts, rest
}
