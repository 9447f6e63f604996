package walstream

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/walweave/walweave/pgrepl"
)

// DefaultProbeInterval is how often Watch probes the idle connection when asked for 0.
const DefaultProbeInterval = 10 * time.Second

// Watch watches the idle connection between PrepareSlot and Stream, while the other
// connection's BASE_BACKUP waits for the server's start checkpoint (minutes with a spread
// checkpoint). An idle walsender sends nothing, so without a reader its end would be noticed
// only when streaming starts: Watch reads the connection, so that a terminated walsender's
// FATAL (57P01) or a closed connection is reported at once, and sends IDENTIFY_SYSTEM every
// probeEvery (0: DefaultProbeInterval), failing when its reply takes longer than replyTimeout
// (0: Config.ProgressTimeout, else no bound), so that a network that black-holes the connection
// is noticed too (TCP keepalives notice it as well, when set).
//
// onFail is called once, from Watch's goroutine, with the first failure. stop ends the watch,
// waits for a probe in flight, leaves the connection ready for Stream and returns the failure
// (nil if none). stop must be called before Stream or Close.
func (r *Receiver) Watch(probeEvery, replyTimeout time.Duration, onFail func(error)) (stop func() error) {
	if probeEvery <= 0 {
		probeEvery = DefaultProbeInterval
	}
	if replyTimeout <= 0 {
		replyTimeout = r.cfg.ProgressTimeout
	}
	w := &watch{r: r, done: make(chan struct{})}
	go w.run(probeEvery, replyTimeout, onFail)
	return w.stop
}

type watch struct {
	r        *Receiver
	mu       sync.Mutex
	stopped  bool
	probing  bool
	done     chan struct{}
	err      error
	stopOnce sync.Once
}

func (w *watch) stop() error {
	w.stopOnce.Do(func() {
		w.mu.Lock()
		w.stopped = true
		if !w.probing {
			_ = w.r.conn.Conn().SetReadDeadline(time.Now())
		}
		w.mu.Unlock()
		<-w.done
	})
	return w.err
}

func (w *watch) run(probeEvery, replyTimeout time.Duration, onFail func(error)) {
	defer close(w.done)
	nc := w.r.conn.Conn()
	defer func() { _ = nc.SetReadDeadline(time.Time{}) }()
	next := time.Now().Add(probeEvery)
	for {
		w.mu.Lock()
		if w.stopped {
			w.mu.Unlock()
			return
		}
		_ = nc.SetReadDeadline(next)
		w.mu.Unlock()
		msg, err := w.r.conn.ReceiveMessage(context.Background())
		if err != nil {
			w.mu.Lock()
			stopped := w.stopped
			w.mu.Unlock()
			if stopped && pgrepl.IsDeadline(err) {
				return
			}
			if !pgrepl.IsDeadline(err) {
				w.fail(onFail, w.r.serverError("wait for the start checkpoint", err))
				return
			}
			if err := w.probe(replyTimeout); err != nil {
				w.fail(onFail, err)
				return
			}
			next = time.Now().Add(probeEvery)
			continue
		}
		switch m := msg.(type) {
		case *pgproto3.NoticeResponse, *pgproto3.ParameterStatus:
		case *pgproto3.ErrorResponse:
			w.fail(onFail, w.r.serverError("wait for the start checkpoint", pgconn.ErrorResponseToPgError(m)))
			return
		default:
			w.fail(onFail, fmt.Errorf("walstream: unexpected message %T from the idle WAL connection during the start checkpoint", msg))
			return
		}
	}
}

// probe runs IDENTIFY_SYSTEM, bounded by timeout.
func (w *watch) probe(timeout time.Duration) error {
	w.mu.Lock()
	if w.stopped {
		w.mu.Unlock()
		return nil
	}
	w.probing = true
	_ = w.r.conn.Conn().SetReadDeadline(time.Time{})
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		w.probing = false
		w.mu.Unlock()
	}()
	ctx := context.Background()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	start := time.Now()
	if _, err := pgrepl.IdentifySystem(ctx, w.r.conn); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("walstream: the idle WAL connection did not answer a probe (IDENTIFY_SYSTEM) within %v while the base backup waited for the start checkpoint (progress timeout): the network, a proxy or the walsender hangs; run the backup again", time.Since(start).Round(time.Millisecond))
		}
		return w.r.serverError("probe the WAL connection during the start checkpoint", err)
	}
	return nil
}

func (w *watch) fail(onFail func(error), err error) {
	w.err = err
	if onFail != nil {
		onFail(err)
	}
}
