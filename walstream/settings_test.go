package walstream

import (
	"testing"
	"time"

	"github.com/walweave/walweave/internal/pgrepl"
)

// ProgressTimeout means what it means everywhere: 0 the default, negative off (the receiver
// then gives up after twice wal_sender_timeout of silence, as the server would).
func TestProgressTimeoutMeaning(t *testing.T) {
	for _, tc := range []struct{ set, want time.Duration }{
		{0, pgrepl.DefaultProgressTimeout},
		{-1, 2 * time.Minute},
		{5 * time.Second, 5 * time.Second},
	} {
		r := &Receiver{cfg: Config{ProgressTimeout: tc.set}, senderTimeout: time.Minute}
		if got := r.silenceLimit(); got != tc.want {
			t.Errorf("ProgressTimeout %v: silence limit %v, want %v", tc.set, got, tc.want)
		}
	}
}
