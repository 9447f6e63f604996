package mux

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/walweave/walweave/source"
	"github.com/walweave/walweave/source/sourcetest"
)

// Validate's first error does not depend on map iteration: the same config gives the same
// error every time.
func TestValidateDeterministic(t *testing.T) {
	cfg := Config{ConnString: "host=h", KeepaliveIdle: time.Millisecond, KeepaliveInterval: time.Millisecond}
	first := cfg.Validate()
	if first == nil || !strings.Contains(first.Error(), "keepalive idle") {
		t.Fatalf("got %v, want the keepalive idle error first", first)
	}
	for range 200 {
		if err := cfg.Validate(); err.Error() != first.Error() {
			t.Fatalf("Validate gave %q, then %q", first, err)
		}
	}
}

// Options that configure one data source are refused, by one table, with any other.
func TestSourceOnlyOptions(t *testing.T) {
	custom := &sourcetest.Source{}
	for _, tc := range []struct {
		name string
		cfg  Config
		want string // "" when accepted
	}{
		{"max rate with jobs", Config{MaxRate: 1 << 20, Jobs: 2}, "MaxRate"},
		{"max rate with a custom source", Config{MaxRate: 1 << 20, Source: custom}, "MaxRate"},
		{"max rate with BASE_BACKUP", Config{MaxRate: 1 << 20}, ""},
		{"compression with jobs", Config{ServerCompression: "lz4", Jobs: 3}, "ServerCompression"},
		{"compression none with jobs", Config{ServerCompression: "none", Jobs: 3}, ""},
		{"incremental with jobs", Config{IncrementalFrom: []byte("{}"), Jobs: 2}, "IncrementalFrom"},
		{"incremental with a custom source", Config{IncrementalFrom: []byte("{}"), Source: custom}, "IncrementalFrom"},
		{"jobs with a custom source", Config{Jobs: 2, Source: custom}, "Jobs"},
	} {
		tc.cfg.ConnString = "host=h"
		err := tc.cfg.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want an error naming %s", tc.name, err, tc.want)
		}
	}
}

// One checkpoint type: the data sources take mux's value as it is.
func TestCheckpointOneType(t *testing.T) {
	var c source.Checkpoint = CheckpointFast
	if c != source.CheckpointFast || CheckpointSpread != source.CheckpointSpread {
		t.Fatal("mux's checkpoint modes are not the sources'")
	}
	if err := (Config{ConnString: "h", Checkpoint: "immediate"}).Validate(); err == nil || !errors.Is(err, source.ErrCheckpointMode) {
		t.Fatalf("an unknown mode: %v", err)
	}
}
