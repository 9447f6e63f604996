package walstream

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/walweave/walweave/internal/pgrepl"
)

// DefaultProbeInterval is how often Watch probes the idle connection when asked for 0.
const DefaultProbeInterval = 10 * time.Second

// Watch watches the idle connection between PrepareSlot and Stream, while the other
// connection's BASE_BACKUP waits for the server's start checkpoint (minutes with a spread
// checkpoint). An idle walsender sends nothing, so without a reader its end would be noticed
// only when streaming starts: Watch reads the connection, so that a terminated walsender's
// FATAL (57P01), a closed connection or one the kernel timed out (TCP keepalive, user timeout)
// is reported at once, and sends IDENTIFY_SYSTEM every probeEvery (0: DefaultProbeInterval),
// failing when its reply takes longer than replyTimeout (0: Config.ProgressTimeout as it
// applies; no bound when that is off): a walsender that hangs on a live connection is noticed
// too.
//
// onFail is called once, from Watch's goroutine, with the first failure. stop ends the watch
// (after the reply to a probe in flight), leaves the connection ready for Stream and returns
// the failure (nil if none). stop must be called before Stream or Close.
func (r *Receiver) Watch(probeEvery, replyTimeout time.Duration, onFail func(error)) (stop func() error) {
	if probeEvery <= 0 {
		probeEvery = DefaultProbeInterval
	}
	if replyTimeout <= 0 {
		replyTimeout = r.progressTimeout()
	}
	w := &watch{r: r, done: make(chan struct{}), every: probeEvery, replyTimeout: replyTimeout}
	go w.run(onFail)
	return w.stop
}

type watch struct {
	r            *Receiver
	every        time.Duration
	replyTimeout time.Duration

	mu       sync.Mutex
	stopped  bool
	probing  bool // a probe's reply is outstanding: stop waits for it
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

func (w *watch) run(onFail func(error)) {
	defer close(w.done)
	nc := w.r.conn.Conn()
	defer func() { _ = nc.SetReadDeadline(time.Time{}) }()
	fail := func(err error) {
		w.err = err
		if onFail != nil {
			onFail(err)
		}
	}
	next := time.Now().Add(w.every)
	var sent time.Time
	for {
		w.mu.Lock()
		if w.stopped && !w.probing {
			w.mu.Unlock()
			return
		}
		deadline := next
		if w.probing {
			deadline = time.Time{}
			if w.replyTimeout > 0 {
				deadline = sent.Add(w.replyTimeout)
			}
		}
		_ = nc.SetReadDeadline(deadline)
		w.mu.Unlock()
		msg, err := w.r.conn.ReceiveMessage(context.Background())
		if err != nil {
			if !pgrepl.IsDeadline(err) {
				fail(w.r.serverError("wait for the start checkpoint", err))
				return
			}
			w.mu.Lock()
			probing, stopped := w.probing, w.stopped
			w.mu.Unlock()
			switch {
			case probing:
				fail(fmt.Errorf("walstream: the idle WAL connection did not answer a probe (IDENTIFY_SYSTEM) within %v while the base backup waited for the start checkpoint (progress timeout): the walsender or a proxy hangs; check the server, then run the backup again", time.Since(sent).Round(time.Millisecond)))
				return
			case stopped:
				return
			}
			if err := w.probe(); err != nil {
				fail(w.r.connError(err))
				return
			}
			sent = time.Now()
			continue
		}
		switch m := msg.(type) {
		case *pgproto3.NoticeResponse, *pgproto3.ParameterStatus,
			*pgproto3.RowDescription, *pgproto3.DataRow, *pgproto3.CommandComplete:
			// The probe's reply, or nothing to act on.
		case *pgproto3.ReadyForQuery:
			w.mu.Lock()
			w.probing = false
			w.mu.Unlock()
			w.r.st.probes.Add(1)
			next = time.Now().Add(w.every)
		case *pgproto3.ErrorResponse:
			fail(w.r.serverError("wait for the start checkpoint", pgconn.ErrorResponseToPgError(m)))
			return
		default:
			fail(fmt.Errorf("walstream: unexpected message %T on the idle WAL connection during the start checkpoint", msg))
			return
		}
	}
}

// probe sends IDENTIFY_SYSTEM; run reads the reply with everything else.
func (w *watch) probe() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return nil
	}
	w.probing = true
	_ = w.r.conn.Conn().SetWriteDeadline(time.Now().Add(max(w.replyTimeout, time.Second)))
	defer func() { _ = w.r.conn.Conn().SetWriteDeadline(time.Time{}) }()
	fe := w.r.conn.Frontend()
	fe.Send(&pgproto3.Query{String: "IDENTIFY_SYSTEM"})
	return fe.Flush()
}
