package pgformat

import (
	"bytes"
	"strings"
)

// quoteConfValue quotes a value for postgresql.conf or postgresql.auto.conf the way ALTER
// SYSTEM writes it: in single quotes, a single quote doubled and a backslash escaped (the
// server's configuration file parser reads backslash escapes inside quotes); a line break,
// which ALTER SYSTEM refuses, is written \n or \r, so that the setting stays one line (the
// server reads it, but a later ALTER SYSTEM rewrites it as a real line break the server then
// cannot parse: callers refuse line breaks in settings).
func quoteConfValue(v string) string {
	return "'" + confEscaper.Replace(v) + "'"
}

var confEscaper = strings.NewReplacer(`\`, `\\`, "'", "''", "\n", `\n`, "\r", `\r`)

// ConfLine returns a setting line, "name = 'value'\n", the value quoted the way ALTER SYSTEM
// writes it (quoteConfValue).
func ConfLine(name, value string) string { return name + " = " + quoteConfValue(value) + "\n" }

// parseConfLine reads one line of a configuration file as the server does: "name = value"
// or "name value", the value quoted (with ” and backslash escapes) or a bare word, an
// optional "# comment" after it. ok is false for a blank or comment line and for a line the
// server would refuse.
func parseConfLine(line string) (name, value string, ok bool) {
	s := strings.TrimRight(line, "\r\n")
	i := skipConfSpace(s, 0)
	j := i
	for j < len(s) && isConfNameByte(s[j]) {
		j++
	}
	if j == i {
		return "", "", false
	}
	name = s[i:j]
	i = skipConfSpace(s, j)
	if i < len(s) && s[i] == '=' {
		i = skipConfSpace(s, i+1)
	}
	if i >= len(s) {
		return "", "", false
	}
	if s[i] == '\'' {
		var b strings.Builder
		i++
		for {
			if i >= len(s) {
				return "", "", false // unterminated
			}
			c := s[i]
			switch {
			case c == '\'' && i+1 < len(s) && s[i+1] == '\'':
				b.WriteByte('\'')
				i += 2
				continue
			case c == '\'':
				i++
			case c == '\\' && i+1 < len(s):
				i = unescapeConf(s, i+1, &b)
				continue
			default:
				b.WriteByte(c)
				i++
				continue
			}
			break
		}
		value = b.String()
	} else {
		j := i
		for j < len(s) && s[j] != ' ' && s[j] != '\t' && s[j] != '#' {
			j++
		}
		value = s[i:j]
		i = j
	}
	i = skipConfSpace(s, i)
	if i < len(s) && s[i] != '#' {
		return "", "", false
	}
	return name, value, true
}

// unescapeConf reads the escape after a backslash at s[i] (as the server's GUC_scanstr:
// \b \f \n \r \t, up to three octal digits, else the character itself) and returns the index
// after it.
func unescapeConf(s string, i int, b *strings.Builder) int {
	switch c := s[i]; c {
	case 'b':
		b.WriteByte('\b')
	case 'f':
		b.WriteByte('\f')
	case 'n':
		b.WriteByte('\n')
	case 'r':
		b.WriteByte('\r')
	case 't':
		b.WriteByte('\t')
	case '0', '1', '2', '3', '4', '5', '6', '7':
		v, k := 0, i
		for k < len(s) && k < i+3 && s[k] >= '0' && s[k] <= '7' {
			v = v*8 + int(s[k]-'0')
			k++
		}
		b.WriteByte(byte(v))
		return k
	default:
		b.WriteByte(c)
	}
	return i + 1
}

func skipConfSpace(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	return i
}

func isConfNameByte(c byte) bool {
	return c == '_' || c == '.' || c == '-' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

// ConfValue returns the value content sets name to (the last setting wins, as in the
// server; names compare case-insensitively).
func ConfValue(content []byte, name string) (value string, ok bool) {
	for _, line := range strings.Split(string(content), "\n") {
		if n, v, lok := parseConfLine(line); lok && strings.EqualFold(n, name) {
			value, ok = v, true
		}
	}
	return value, ok
}

// RemoveConfSettings returns content without the lines setting any of names (other lines
// byte for byte, each ending in a newline).
func RemoveConfSettings(content []byte, names ...string) []byte {
	var out []byte
	for len(content) > 0 {
		line, rest, _ := bytes.Cut(content, []byte{'\n'})
		content = rest
		drop := false
		if n, _, ok := parseConfLine(string(line)); ok {
			for _, want := range names {
				drop = drop || strings.EqualFold(n, want)
			}
		}
		if !drop {
			out = append(append(out, line...), '\n')
		}
	}
	return out
}
