package restore

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/walweave/walweave/pgformat"
)

// RecoveryComment heads the recovery settings Extract appends to postgresql.auto.conf (the
// tablespace lines walweave's backup writes there are pgformat's: AppendTablespaceLines).
const RecoveryComment = "# walweave restore: recovery settings"

// tablespaceLocations returns the oid -> original location recorded by walweave's comments.
func tablespaceLocations(conf []byte) map[string]string {
	ts, _ := pgformat.ParseTablespaceLines(conf)
	out := make(map[string]string, len(ts))
	for _, t := range ts {
		out[t.OID] = filepath.Clean(t.Location)
	}
	return out
}

// rewriteAutoConf removes walweave's comment lines for the relocated tablespaces, and
// walweave's allow_in_place_tablespaces line (with every walweave comment) when no in-place
// tablespace remains; then appends the recovery settings.
func rewriteAutoConf(conf []byte, relocated map[string]bool, inPlaceLeft bool, rec []string) []byte {
	ts, rest := pgformat.ParseTablespaceLines(conf)
	if inPlaceLeft {
		var keep []pgformat.TablespaceLocation
		for _, t := range ts {
			if !relocated[t.OID] {
				keep = append(keep, t)
			}
		}
		rest = pgformat.AppendTablespaceLines(rest, keep)
	}
	b := bytes.NewBuffer(rest)
	if len(rec) > 0 {
		if b.Len() > 0 && !bytes.HasSuffix(b.Bytes(), []byte("\n")) {
			b.WriteByte('\n')
		}
		b.WriteString(RecoveryComment + "\n")
		for _, l := range rec {
			b.WriteString(l + "\n")
		}
	}
	return b.Bytes()
}

// RecoveryOptions asks Extract to set the restored cluster up for recovery: as a standby
// (standby.signal) or for targeted recovery (recovery.signal), with settings appended to
// postgresql.auto.conf. A signal file of the other kind that came with the stream is
// removed.
type RecoveryOptions struct {
	// Standby writes standby.signal (otherwise recovery.signal).
	Standby bool
	// PrimaryConnInfo and PrimarySlotName set primary_conninfo and primary_slot_name.
	PrimaryConnInfo, PrimarySlotName string
	// RestoreCommand sets restore_command. PostgreSQL requires one for targeted recovery
	// (recovery.signal); when it is empty there, Extract writes restore_command = 'false',
	// so that recovery reads the WAL that came with the stream (pg_wal) and nothing else.
	RestoreCommand string
	// At most one recovery target: recovery_target_time, recovery_target_lsn,
	// recovery_target_name.
	TargetTime, TargetLSN, TargetName string
	// TargetAction is recovery_target_action: pause, promote or shutdown ("" leaves the
	// server default).
	TargetAction string
}

// Validate reports the first setting PostgreSQL would refuse (Extract checks them too,
// before it creates anything).
func (o *RecoveryOptions) Validate() error { return o.validate() }

func (o *RecoveryOptions) validate() error {
	n := 0
	for _, v := range []string{o.TargetTime, o.TargetLSN, o.TargetName} {
		if v != "" {
			n++
		}
	}
	if n > 1 {
		return fmt.Errorf("restore: at most one recovery target (time, LSN or name) may be given")
	}
	if o.TargetTime != "" {
		if err := ValidateTargetTime(o.TargetTime); err != nil {
			return fmt.Errorf("restore: %w", err)
		}
	}
	if o.TargetLSN != "" {
		if _, err := pgformat.ParseLSN(o.TargetLSN); err != nil {
			return fmt.Errorf("restore: recovery target LSN: %v", err)
		}
	}
	switch o.TargetAction {
	case "", "pause", "promote", "shutdown":
	default:
		return fmt.Errorf("restore: recovery target action %q: want pause, promote or shutdown", o.TargetAction)
	}
	if o.TargetAction != "" && n == 0 {
		return fmt.Errorf("restore: a recovery target action needs a recovery target")
	}
	for _, v := range []string{o.PrimaryConnInfo, o.PrimarySlotName, o.RestoreCommand, o.TargetTime, o.TargetLSN, o.TargetName} {
		if strings.ContainsAny(v, "\n\r\x00") {
			return fmt.Errorf("restore: recovery settings cannot contain line breaks or NUL bytes")
		}
	}
	return nil
}

// settings returns the postgresql.auto.conf lines.
func (o *RecoveryOptions) settings() []string {
	var out []string
	add := func(name, v string) {
		if v != "" {
			out = append(out, strings.TrimSuffix(pgformat.ConfLine(name, v), "\n"))
		}
	}
	add("primary_conninfo", o.PrimaryConnInfo)
	add("primary_slot_name", o.PrimarySlotName)
	rc := o.RestoreCommand
	if rc == "" && !o.Standby {
		rc = "false"
	}
	add("restore_command", rc)
	add("recovery_target_time", o.TargetTime)
	add("recovery_target_lsn", o.TargetLSN)
	add("recovery_target_name", o.TargetName)
	add("recovery_target_action", o.TargetAction)
	return out
}
