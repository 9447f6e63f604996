package verify_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	fixture "github.com/walweave/walweave/internal/verifytest"
	"github.com/walweave/walweave/verify"
)

// stalled sends its data, then nothing: its next Read blocks until the test ends (a pipe whose
// writer stopped).
type stalled struct {
	r       io.Reader
	blocked chan struct{} // closed when the Read that blocks starts
	once    sync.Once
	release chan struct{}
}

func (s *stalled) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err == io.EOF {
		s.once.Do(func() { close(s.blocked) })
		<-s.release
		return 0, io.ErrUnexpectedEOF
	}
	return n, err
}

// TestStreamInterruptedWhileStalled: a Stream blocked reading an input that sends nothing more
// returns the context's error as soon as the context ends, without waiting for the input.
func TestStreamInterruptedWhileStalled(t *testing.T) {
	s := fixture.Synth(fixture.SynthOptions{})
	var buf bytes.Buffer
	if _, err := s.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	in := &stalled{r: bytes.NewReader(buf.Bytes()[:buf.Len()/2]), blocked: make(chan struct{}), release: make(chan struct{})}
	defer close(in.release)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := verify.Stream(ctx, in, verify.Options{})
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("Stream returned before the input stalled: %v", err)
	case <-in.blocked:
	}
	at := time.Now()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Stream returned %v, want context.Canceled", err)
		}
		t.Logf("returned %v after the cancel", time.Since(at))
	case <-time.After(10 * time.Second):
		t.Fatal("Stream still blocked 10 s after its context was cancelled")
	}
}
