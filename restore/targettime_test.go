package restore_test

import (
	"strings"
	"testing"

	"github.com/walweave/walweave/restore"
)

// recovery_target_time is checked before anything is written.
func TestValidateTargetTime(t *testing.T) {
	for _, ok := range []string{"2024-01-02", "2024-01-02 03:04:05", "2024-01-02 03:04:05+00", "2024-01-02T03:04:05Z",
		"2024-01-02 03:04:05.123456+02:00", "2024-01-02 03:04:05-0530", "2024-01-02 03:04 UTC", "2024-02-29 00:00:00 Europe/Paris", "2024-01-02 03:04:05 CET"} {
		if err := restore.ValidateTargetTime(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for bad, want := range map[string]string{"yesterday": "special values", "now": "special values", "next tuesday": "not a timestamp",
		"2024-13-01": "not a valid date", "2023-02-29 00:00:00": "not a valid date", "2024-01-02 25:00:00": "not a valid date",
		"2024-01-02 03:04:05+16": "out of range", "01/02/2024": "not a timestamp"} {
		err := restore.ValidateTargetTime(bad)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error mentioning %q", bad, err, want)
		}
	}
	// Extract refuses it before creating the directory.
	dir := t.TempDir() + "/r"
	_, err := restore.Extract(t.Context(), strings.NewReader(""), restore.Options{Dir: dir, Recovery: &restore.RecoveryOptions{TargetTime: "yesterday"}})
	if err == nil || !strings.Contains(err.Error(), "special values") {
		t.Fatalf("Extract: %v", err)
	}
}
