package edgetls

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// A listener replaced by a reload hands its socket over rather than
// closing it, and stops without dropping what it has accepted. Closing a
// listening socket resets the connections the kernel queued on it but the
// server had not accepted yet; and http.Server.Shutdown answers no request
// it reads after it began, so the first request of a connection accepted
// just before gets EOF. The pieces here are shared by the TLS server and
// the proxy's plain listeners.

// ShareListener returns a listener on ln's socket through a duplicate
// descriptor: closing either closes only its own descriptor, and the
// socket stays open, its queue included, while the other lives.
func ShareListener(ln *net.TCPListener) (*net.TCPListener, error) {
	f, err := ln.File()
	if err != nil {
		return nil, fmt.Errorf("sharing the socket on %s: %w", ln.Addr(), err)
	}
	defer f.Close()
	shared, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("sharing the socket on %s: %w", ln.Addr(), err)
	}
	return shared.(*net.TCPListener), nil
}

// BusyConns tracks an http.Server's connections that are new (their first
// request not read yet) or active (a request being answered). Set Track
// as the server's ConnState.
type BusyConns struct {
	mu    sync.Mutex
	conns map[net.Conn]time.Time // when it became new; zero while active
}

// newConnGrace is how long a connection that has sent nothing counts as
// busy: as http.Server.Shutdown does (Go issue 22682), a client that
// opened a connection and sent nothing for 5s is treated as idle.
const newConnGrace = 5 * time.Second

// Track records c's new state.
func (b *BusyConns) Track(c net.Conn, st http.ConnState) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.conns == nil {
		b.conns = map[net.Conn]time.Time{}
	}
	switch st {
	case http.StateNew:
		b.conns[c] = time.Now()
	case http.StateActive:
		b.conns[c] = time.Time{}
	default:
		delete(b.conns, c)
	}
}

// busy counts the connections with a request to answer, or new for less
// than newConnGrace.
func (b *BusyConns) busy() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, since := range b.conns {
		if since.IsZero() || time.Since(since) < newConnGrace {
			n++
		}
	}
	return n
}

// Wait polls, as http.Server.Shutdown does, until no connection is busy
// or ctx ends.
func (b *BusyConns) Wait(ctx context.Context) {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		if b.busy() == 0 {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// StopAccepting is the first part of a server's graceful stop: close ln,
// the listener srv serves, wait for served (closed once Serve returned),
// turn keep-alives off and wait until no connection of busy has a request
// to answer or ctx ends. Each connection answers what it has read or is
// about to read, then closes; srv.Shutdown then finds only idle ones.
func StopAccepting(ctx context.Context, srv *http.Server, ln net.Listener, served <-chan struct{}, busy *BusyConns) {
	_ = ln.Close()
	select {
	case <-served:
	case <-ctx.Done():
	}
	srv.SetKeepAlivesEnabled(false)
	busy.Wait(ctx)
}
