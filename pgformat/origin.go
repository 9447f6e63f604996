package pgformat

import (
	"strconv"
	"strings"
)

// originPrefix starts the text of a BackupOrigin.
const originPrefix = "walweave:"

// BackupOrigin is the identity of the cluster a walweave stream was taken from. walweave
// writes it as the PAX "comment" record of the stream's backup_label member (tar readers
// keep or ignore a comment; nothing is extracted from it), so that a reader learns which
// cluster and which major version a backup belongs to from the stream's head, before its
// data: backup_label itself says neither.
type BackupOrigin struct {
	SystemID      uint64 // the cluster's system identifier
	ServerVersion int    // server_version_num, e.g. 180006
}

// Major is the PostgreSQL major version (18 for 180006), 0 if unknown.
func (o BackupOrigin) Major() int { return o.ServerVersion / 10000 }

// String is the comment's text: "walweave: system_identifier=<n> server_version_num=<n>".
func (o BackupOrigin) String() string {
	return originPrefix + " system_identifier=" + strconv.FormatUint(o.SystemID, 10) +
		" server_version_num=" + strconv.Itoa(o.ServerVersion)
}

// ParseBackupOrigin reads a comment written by BackupOrigin.String. ok is false for any
// other text (a comment of another tool, or none) and for a value that is not a number;
// keys it does not know are skipped, so that later walweave versions may add some.
func ParseBackupOrigin(comment string) (o BackupOrigin, ok bool) {
	rest, found := strings.CutPrefix(comment, originPrefix)
	if !found {
		return BackupOrigin{}, false
	}
	var haveID, haveVersion bool
	for _, field := range strings.Fields(rest) {
		key, value, _ := strings.Cut(field, "=")
		switch key {
		case "system_identifier":
			id, err := strconv.ParseUint(value, 10, 64)
			if err != nil || id == 0 {
				return BackupOrigin{}, false
			}
			o.SystemID, haveID = id, true
		case "server_version_num":
			v, err := strconv.Atoi(value)
			if err != nil || v < 10000 || v > 999999 {
				return BackupOrigin{}, false
			}
			o.ServerVersion, haveVersion = v, true
		}
	}
	return o, haveID && haveVersion
}
