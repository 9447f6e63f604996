package restore

import "strings"

// WALGetCommand returns a restore_command that fetches WAL from a walweave WAL archive: the
// walweave binary at path walweave running "wal get %f %p" with --from DIR (a directory
// archive) or, when fromDir is "", --from-exec CMD (a command that writes the file to stdout,
// exits 1 when the archive does not have it). Paths and the command are quoted for the shell
// PostgreSQL runs restore_command with, and their percent signs doubled (restore_command reads
// %f, %p, %r and %%).
func WALGetCommand(walweave, fromDir, fromExec string) string {
	var b strings.Builder
	b.WriteString(pct(shellQuote(walweave)))
	b.WriteString(" wal get %f %p ")
	if fromDir != "" {
		b.WriteString("--from " + pct(shellQuote(fromDir)))
	} else {
		b.WriteString("--from-exec " + pct(shellQuote(fromExec)))
	}
	return b.String()
}

// shellQuote quotes s for sh: in single quotes, a single quote as '\”.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func pct(s string) string { return strings.ReplaceAll(s, "%", "%%") }
