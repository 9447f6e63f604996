package pgformat

import (
	"bytes"
	"errors"
	"testing"
)

const label15 = "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n" +
	"CHECKPOINT LOCATION: 0/2000060\n" +
	"BACKUP METHOD: streamed\n" +
	"BACKUP FROM: primary\n" +
	"START TIME: 2024-05-06 07:08:09 UTC\n" +
	"LABEL: pg_basebackup base backup\n" +
	"START TIMELINE: 1\n"

const label17inc = "START WAL LOCATION: 16/B3000028 (file 0000000200000016000000B3)\n" +
	"CHECKPOINT LOCATION: 16/B3000080\n" +
	"BACKUP METHOD: streamed\n" +
	"BACKUP FROM: standby\n" +
	"START TIME: 2024-05-06 07:08:09 CEST\n" +
	"LABEL: nightly: inc 1\n" +
	"START TIMELINE: 2\n" +
	"INCREMENTAL FROM LSN: 16/A0000028\n" +
	"INCREMENTAL FROM TLI: 2\n"

func TestBackupLabelRoundTrip(t *testing.T) {
	for _, in := range []string{label15, label17inc} {
		l, err := ParseBackupLabel([]byte(in))
		if err != nil {
			t.Fatal(err)
		}
		if got := l.Bytes(); string(got) != in {
			t.Errorf("Bytes:\n%s\nwant:\n%s", got, in)
		}
	}
	l, _ := ParseBackupLabel([]byte(label17inc))
	if !l.Incremental() || l.IncrementalFromLSN != 0x16_A0000028 || l.IncrementalFromTLI != 2 || l.StartLSN != 0x16_B3000028 ||
		l.StartSegment != "0000000200000016000000B3" || l.Label != "nightly: inc 1" || l.BackupFrom != "standby" {
		t.Fatalf("%+v", l)
	}
	full := l.WithoutIncremental()
	if full.Incremental() || bytes.Contains(full.Bytes(), []byte("INCREMENTAL")) {
		t.Fatalf("WithoutIncremental: %s", full.Bytes())
	}
	if got := DropIncrementalLines([]byte(label17inc)); string(got) != string(full.Bytes()) {
		t.Fatalf("DropIncrementalLines:\n%s", got)
	}
	l15, _ := ParseBackupLabel([]byte(label15))
	l15.StartSegment = ""
	if string(l15.Bytes()) != label15 {
		t.Fatalf("segment not derived: %s", l15.Bytes())
	}
}

func TestParseBackupLabelErrors(t *testing.T) {
	if _, err := ParseBackupLabel([]byte("hello\n")); !errors.Is(err, ErrNotBackupLabel) {
		t.Fatalf("%v", err)
	}
	for _, bad := range []string{
		"START WAL LOCATION: zz (file x)\n",
		label15 + "CHECKPOINT LOCATION: 1\n",
		label15 + "START TIMELINE: 0\n",
		label15 + "INCREMENTAL FROM LSN: q\n",
		label15 + "INCREMENTAL FROM TLI: -1\n",
		string(make([]byte, MaxBackupLabelSize+1)),
	} {
		if _, err := ParseBackupLabel([]byte(bad)); err == nil {
			t.Errorf("accepted %.60q", bad)
		}
	}
}
