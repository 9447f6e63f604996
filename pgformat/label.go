package pgformat

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// MaxBackupLabelSize bounds the backup_label ParseBackupLabel accepts (the server's is a
// few hundred bytes; LABEL is at most 1023 bytes).
const MaxBackupLabelSize = 64 << 10

// BackupLabel is the content of a backup_label file, as the server writes it for a base
// backup (build_backup_content in PostgreSQL 16+, do_pg_backup_start in 15).
type BackupLabel struct {
	// StartLSN is START WAL LOCATION: the backup's start (the checkpoint's redo pointer).
	StartLSN LSN
	// StartSegment is the WAL file named after START WAL LOCATION: "(file X)".
	StartSegment string
	// CheckpointLSN is CHECKPOINT LOCATION.
	CheckpointLSN LSN
	// BackupMethod is BACKUP METHOD ("streamed" from PostgreSQL 15 on).
	BackupMethod string
	// BackupFrom is BACKUP FROM: "primary" or "standby".
	BackupFrom string
	// StartTime is START TIME as written, "2006-01-02 15:04:05 MST" in the server's
	// log_timezone (kept as text: the zone abbreviation is the server's).
	StartTime string
	// Label is LABEL (pg_basebackup's -l, "pg_basebackup base backup" by default).
	Label string
	// StartTimeline is START TIMELINE.
	StartTimeline uint32
	// IncrementalFromLSN and IncrementalFromTLI are INCREMENTAL FROM LSN and INCREMENTAL
	// FROM TLI (PostgreSQL 17+ incremental backups): the prior backup's start. Zero when
	// the backup is not incremental.
	IncrementalFromLSN LSN
	IncrementalFromTLI uint32
}

// Incremental reports whether the label is an incremental backup's.
func (b *BackupLabel) Incremental() bool {
	return b.IncrementalFromLSN != 0 || b.IncrementalFromTLI != 0
}

// Bytes returns the backup_label content in the server's format: the lines in its order,
// each ended by "\n", the INCREMENTAL FROM lines only for an incremental backup. An empty
// StartSegment is filled in for 16 MiB segments; set it for other sizes.
func (b BackupLabel) Bytes() []byte {
	seg := b.StartSegment
	if seg == "" {
		seg = WALFileName(b.StartTimeline, b.StartLSN, 16<<20)
	}
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "START WAL LOCATION: %s (file %s)\n", b.StartLSN, seg)
	fmt.Fprintf(&buf, "CHECKPOINT LOCATION: %s\n", b.CheckpointLSN)
	fmt.Fprintf(&buf, "BACKUP METHOD: %s\n", b.BackupMethod)
	fmt.Fprintf(&buf, "BACKUP FROM: %s\n", b.BackupFrom)
	fmt.Fprintf(&buf, "START TIME: %s\n", b.StartTime)
	fmt.Fprintf(&buf, "LABEL: %s\n", b.Label)
	fmt.Fprintf(&buf, "START TIMELINE: %d\n", b.StartTimeline)
	if b.Incremental() {
		fmt.Fprintf(&buf, "INCREMENTAL FROM LSN: %s\n", b.IncrementalFromLSN)
		fmt.Fprintf(&buf, "INCREMENTAL FROM TLI: %d\n", b.IncrementalFromTLI)
	}
	return buf.Bytes()
}

// WithoutIncremental returns the label with the INCREMENTAL FROM fields cleared: what a
// restore of a chain of backups writes, so that PostgreSQL starts on the result.
func (b BackupLabel) WithoutIncremental() BackupLabel {
	b.IncrementalFromLSN, b.IncrementalFromTLI = 0, 0
	return b
}

// DropIncrementalLines returns content without its "INCREMENTAL FROM ..." lines, every
// other byte kept as it was (for a label that is not to be re-formatted).
func DropIncrementalLines(content []byte) []byte {
	out := make([]byte, 0, len(content))
	for len(content) > 0 {
		line := content
		if i := bytes.IndexByte(content, '\n'); i >= 0 {
			line = content[:i+1]
		}
		content = content[len(line):]
		if !bytes.HasPrefix(line, []byte("INCREMENTAL FROM ")) {
			out = append(out, line...)
		}
	}
	return out
}

// ErrNotBackupLabel is wrapped by ParseBackupLabel's error when the content has no START WAL
// LOCATION line.
var ErrNotBackupLabel = errors.New("not a backup_label: no START WAL LOCATION")

// ParseBackupLabel parses a backup_label. Lines are "KEY: value"; unknown keys are ignored
// (a backup history file's STOP lines, future additions). START WAL LOCATION is required;
// a malformed value of a known key is an error.
func ParseBackupLabel(content []byte) (*BackupLabel, error) {
	if len(content) > MaxBackupLabelSize {
		return nil, fmt.Errorf("backup_label is larger than %d bytes", MaxBackupLabelSize)
	}
	l := &BackupLabel{}
	haveStart := false
	for _, line := range strings.Split(string(content), "\n") {
		line = strings.TrimSuffix(line, "\r")
		key, val, ok := strings.Cut(line, ": ")
		if !ok {
			continue
		}
		bad := func() error { return fmt.Errorf("backup_label: invalid %s %q", key, val) }
		switch key {
		case "START WAL LOCATION":
			lsn, rest, _ := strings.Cut(val, " ")
			v, err := ParseLSN(lsn)
			if err != nil {
				return nil, bad()
			}
			l.StartLSN, haveStart = v, true
			if f, ok := strings.CutPrefix(rest, "(file "); ok {
				l.StartSegment = strings.TrimSuffix(f, ")")
			}
		case "CHECKPOINT LOCATION":
			v, err := ParseLSN(strings.TrimSpace(val))
			if err != nil {
				return nil, bad()
			}
			l.CheckpointLSN = v
		case "BACKUP METHOD":
			l.BackupMethod = val
		case "BACKUP FROM":
			l.BackupFrom = val
		case "START TIME":
			l.StartTime = val
		case "LABEL":
			l.Label = val
		case "START TIMELINE":
			t, err := strconv.ParseUint(strings.TrimSpace(val), 10, 32)
			if err != nil || t == 0 {
				return nil, bad()
			}
			l.StartTimeline = uint32(t)
		case "INCREMENTAL FROM LSN":
			v, err := ParseLSN(strings.TrimSpace(val))
			if err != nil {
				return nil, bad()
			}
			l.IncrementalFromLSN = v
		case "INCREMENTAL FROM TLI":
			t, err := strconv.ParseUint(strings.TrimSpace(val), 10, 32)
			if err != nil || t == 0 {
				return nil, bad()
			}
			l.IncrementalFromTLI = uint32(t)
		}
	}
	if !haveStart {
		return nil, ErrNotBackupLabel
	}
	return l, nil
}
