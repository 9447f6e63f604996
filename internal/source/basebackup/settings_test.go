package basebackup

import (
	"testing"
	"time"

	"github.com/walweave/walweave/internal/pgrepl"
)

// ProgressTimeout means what it means everywhere: 0 the default, negative off.
func TestProgressTimeoutMeaning(t *testing.T) {
	for _, tc := range []struct{ set, want time.Duration }{
		{0, pgrepl.DefaultProgressTimeout},
		{-1, 0},
		{5 * time.Second, 5 * time.Second},
	} {
		if got := New(Config{ProgressTimeout: tc.set}).stallTimeout(); got != tc.want {
			t.Errorf("ProgressTimeout %v: stall timeout %v, want %v", tc.set, got, tc.want)
		}
	}
}
