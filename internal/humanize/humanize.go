// Package humanize formats byte counts for people: 512 B, 1.5 KiB, 354.7 MiB. The CLI's
// progress lines and verify's report use it, so they print sizes alike.
package humanize

import "fmt"

// Bytes formats n with a binary unit (B, KiB, MiB, ... EiB) and one decimal above 1 KiB.
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
