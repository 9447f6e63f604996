package verify

import "github.com/walweave/walweave/pgformat"

// LSN is a PostgreSQL WAL location (an XLogRecPtr): pgformat's LSN.
type LSN = pgformat.LSN

// ParseLSN parses PostgreSQL's "X/Y" notation (pgformat.ParseLSN).
func ParseLSN(s string) (LSN, error) { return pgformat.ParseLSN(s) }
