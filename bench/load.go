package main

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"syscall"
	"time"
)

// load is a background pgbench write load (TPC-B-like transactions).
type load struct {
	cancel context.CancelFunc
	done   chan struct{}
	out    bytes.Buffer
	err    error
}

// startLoad starts pgbench with the given number of clients; it runs until stop.
func startLoad(ctx context.Context, srv *server, clients int) (*load, error) {
	ctx, cancel := context.WithCancel(ctx)
	l := &load{cancel: cancel, done: make(chan struct{})}
	cmd := srv.command(ctx, "pgbench", "-n", "-c", strconv.Itoa(clients), "-j", "1", "-T", "86400", srv.sqlDSN)
	cmd.Stdout, cmd.Stderr = &l.out, &l.out
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGINT) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, fmt.Errorf("start pgbench: %w", err)
	}
	go func() { l.err = cmd.Wait(); close(l.done) }()
	return l, nil
}

// stop ends the load. It returns an error if pgbench had died on its own before.
func (l *load) stop() error {
	select {
	case <-l.done:
		l.cancel()
		return fmt.Errorf("pgbench load ended early: %v\n%s", l.err, lastLines(l.out.String(), 10))
	default:
	}
	l.cancel()
	<-l.done
	return nil
}
