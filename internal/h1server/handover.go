package h1server

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"time"
)

// A reload that changes a listener's settings starts a new server on the
// same socket (the old one's listener is shared, see edgetls.ShareListener)
// and hands the old server's HTTP/1.1 connections over to it: a client's
// keep-alive connection is never closed under it by a reload, so a request
// it sends at that moment is never lost, and its next request is served
// with the new settings. Closing idle connections instead races the
// client's next request (RFC 9112 section 9.3.1), which a client may only
// send again when it is idempotent.

// HandOver stops accepting on the server's listeners at once (the
// successor shares their sockets and takes their queues) and moves every
// HTTP/1.1 connection to next as soon as it waits for a request: idle ones
// now, busy ones once their response is done, with whatever of a next
// request they have read. Responses keep the connection open. HTTP/2
// connections, which cannot move, get GOAWAY and finish their streams.
// It returns when every connection has moved or closed, or when ctx ends:
// then what is left is closed and ctx's error returned. next must serve
// already. If next drains meanwhile, it keeps what it is handed as its own
// idle connections; one handed over after next is done is closed.
func (s *Server) HandOver(ctx context.Context, next *Server) error {
	s.next.Store(next)
	s.stop.Do(func() { s.stopAccepting(false) })
	h2err, err := s.settle(ctx, s.moveIdle)
	if err != nil {
		return err
	}
	return h2err
}

// moveIdle wakes the idle connections that wait for a next request, which
// then move to the successor (see conn.waitNext); any other moves once it
// answered its request. It closes new ones that have sent nothing for
// newConnGrace, and reports how many connections are still open.
func (s *Server) moveIdle() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.wake()
		c.closeIfIdle()
	}
	return len(s.conns)
}

// wake ends the wait of a connection parked idle in waitNext, which then
// moves to the successor.
func (c *conn) wake() {
	c.parkMu.Lock()
	defer c.parkMu.Unlock()
	if c.parked && c.state.CompareAndSwap(stateIdle, stateMoving) {
		if wakeHook != nil {
			wakeHook()
		}
		// Its goroutine waits in a read: a deadline now ends the wait and
		// nothing read is lost (a timed-out read of a TLS connection
		// leaves it usable too). The goroutine un-parks only after this,
		// and moveTo clears the deadline before the successor reads.
		_ = c.rwc.SetReadDeadline(time.Now())
	}
}

// wakeHook, when set by a test, runs between a connection's move being
// decided and its wait being ended.
var wakeHook func()

// park marks the connection as waiting for a next request, or as done
// waiting (see parkMu).
func (c *conn) park(on bool) {
	c.parkMu.Lock()
	c.parked = on
	c.parkMu.Unlock()
}

// moveTo hands the connection, idle, with what it has read of a next
// request, to next; if next does not take it, it is closed. Either way
// this server is done with it.
func (c *conn) moveTo(next *Server) {
	if next == nil {
		return
	}
	c.r.stopWatch()
	var buffered []byte
	if c.br != nil {
		buffered, _ = c.br.Peek(c.br.Buffered())
	}
	c.r.mu.Lock()
	// The stream's order: what the bufio reader holds came before what
	// the watch read after it.
	pending := append(bytes.Clone(buffered), c.r.got...)
	c.r.got = nil
	c.r.dropChunk()
	c.r.mu.Unlock()
	_ = c.rwc.SetReadDeadline(time.Time{})
	// Forgotten here before next serves it: nothing this server does to
	// its connections (closing them when its time is up) may reach it.
	c.s.untrack(c)
	rwc := c.rwc
	if len(pending) > 0 {
		rwc = &prefixConn{Conn: c.rwc, prefix: pending}
	}
	if next.adopt(rwc, c.tls) {
		c.hijacked = true // end leaves the connection open: it is next's
	}
}

// pushH2 gives c to the HTTP/2 server, or, once this server handed its
// listeners over, to its successor's, and reports whether one took it.
func (s *Server) pushH2(c net.Conn) bool {
	if s.h2ln != nil && s.h2ln.push(c) {
		return true
	}
	if next := s.next.Load(); next != nil {
		return next.pushH2(c)
	}
	return false
}

// adopt serves rwc, an idle connection handed over by the server this one
// replaced, and reports whether it took it: a server handing over in turn
// passes it on to its own successor; one that drains takes it as one of
// its own idle connections (its next request is answered, with
// Connection: close); one done with its connections takes none.
func (s *Server) adopt(rwc net.Conn, st *tls.ConnectionState) bool {
	s.mu.Lock()
	if next := s.next.Load(); next != nil {
		s.mu.Unlock()
		return next.adopt(rwc, st)
	}
	if s.ended {
		s.mu.Unlock()
		return false
	}
	c := newConn(s, rwc)
	c.tls, c.adopted = st, true
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	go c.serve()
	return true
}
