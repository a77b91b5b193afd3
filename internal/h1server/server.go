// Package h1server serves HTTP/1.1 to clients on the proxy's plain
// listeners, in place of net/http's server.
//
// Requests are parsed by net/http's own reader (http.ReadRequest), so the
// framing rules that guard against request smuggling are net/http's: one
// Content-Length or chunked, nothing else. On top of that the server adds
// the checks net/http's server makes (Host fields, field names and values,
// protocol version, Expect) with the same answers.
//
// What it does differently, and why it is cheaper:
//   - A connection is watched for the client leaving only once a request
//     has run for watchAfter, by a wait in the network poller and a peek
//     that leaves a next request's bytes on the socket (see connReader):
//     net/http starts a read for every request and aborts it after the
//     response, one system call and two goroutine wake-ups per request
//     for nothing, and holds a buffer for it.
//   - A connection holds its buffers only while it reads a request or
//     writes a response (see buffers.go): an idle keep-alive connection
//     holds none, nor does one whose handler waits with nothing of its
//     request left to read. net/http's holds a 4 KiB reader and a 4 KiB
//     writer for as long as the connection is open.
//   - A request read while the server drains is answered, with
//     Connection: close; net/http's server drops it. So is one already
//     buffered behind a response that promised keep-alive, and one on a
//     connection accepted just as draining began: on a listener shared
//     with the next generation, closing that connection unread would
//     reset a client that did nothing wrong.
//   - It never invents a Content-Type: a proxy passes the backend's, or
//     none.
//
// Connections that open with the HTTP/2 preface (h2c with prior knowledge)
// are handed to an http.Server that serves only them.
//
// Its requests' contexts and its response writers offer the proxy the
// fast paths named in internal/fastpath (Watchable, HeaderAdopter). It
// imports fastpath, internal/h1wire (the wire pieces it shares with the
// client, internal/h1client) and internal/sockio; nothing else of the
// project.
package h1server

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Options configures a Server. Zero timeouts follow net/http's rules: no
// read header timeout means ReadTimeout, no idle timeout means
// ReadTimeout, and zero ReadTimeout or WriteTimeout means none.
type Options struct {
	// Handler serves every HTTP/1.x request.
	Handler http.Handler
	// ReadHeaderTimeout bounds reading a request's head.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, body included.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing a response, from the end of its
	// request's head.
	WriteTimeout time.Duration
	// IdleTimeout closes a keep-alive connection that sends no next request.
	IdleTimeout time.Duration
	// MaxHeaderBytes caps a request's head; zero means
	// http.DefaultMaxHeaderBytes.
	MaxHeaderBytes int
	// H2C, if set, serves connections that open with the HTTP/2 preface.
	// The Server owns it: Serve feeds it, Shutdown shuts it down. Its
	// Protocols must allow unencrypted HTTP/2. Not used with TLSConfig.
	H2C *http.Server
	// TLSConfig, if set, makes every connection TLS: it is handshaken
	// within ReadHeaderTimeout before anything is read, and its requests
	// carry its state (Request.TLS). A connection that negotiated "h2" by
	// ALPN goes to H2; any other serves HTTP/1.1 here, so a TLS listener
	// answers the same bytes as a plain one.
	TLSConfig *tls.Config
	// H2, with TLSConfig, serves the connections that negotiated HTTP/2,
	// handshaken already. The Server owns it as it owns H2C; its
	// Protocols must allow HTTP/2.
	H2 *http.Server
	// Logger receives handler panics and malformed responses, at debug
	// level for what a client caused. Nil means slog.Default().
	Logger *slog.Logger
}

// watchAfter is how long a request runs before its connection is watched
// for the client leaving. Most requests end sooner and are never watched;
// a client that leaves a longer one is noticed this much later.
const watchAfter = 10 * time.Millisecond

// newConnGrace is how long a connection that has sent nothing counts as
// busy while draining, as net/http's Shutdown counts it (Go issue 22682).
const newConnGrace = 5 * time.Second

// Server serves HTTP/1.1 on the listeners given to Serve.
type Server struct {
	o             Options
	headerTimeout time.Duration
	idleTimeout   time.Duration
	headLimit     int64 // bytes a request head may take, with slack as net/http allows
	logger        *slog.Logger

	draining atomic.Bool
	// acceptDone is set once the server stops accepting: it drains, or
	// hands its connections over to next.
	acceptDone atomic.Bool
	next       atomic.Pointer[Server]

	mu    sync.Mutex
	lns   map[net.Listener]struct{}
	conns map[*conn]struct{}
	// ended is set once Shutdown or Close is done with the connections:
	// from then on adopt takes none.
	ended  bool
	served sync.WaitGroup // Serve calls still accepting

	// h2 serves the connections found to speak HTTP/2: H2C's (by their
	// preface) or H2's (by ALPN); nil if neither is set.
	h2      *http.Server
	h2ln    *handoff
	h2once  sync.Once
	h2done  chan struct{} // closed when the HTTP/2 server's Serve returned
	stopped chan struct{} // closed by Shutdown or Close
	stop    sync.Once
}

// New returns a Server that serves nothing until Serve.
func New(o Options) *Server {
	s := &Server{
		o:             o,
		headerTimeout: o.ReadHeaderTimeout,
		idleTimeout:   o.IdleTimeout,
		logger:        o.Logger,
		lns:           map[net.Listener]struct{}{},
		conns:         map[*conn]struct{}{},
		h2:            o.H2C,
		h2done:        make(chan struct{}),
		stopped:       make(chan struct{}),
	}
	if s.headerTimeout <= 0 {
		s.headerTimeout = o.ReadTimeout
	}
	if s.idleTimeout <= 0 {
		s.idleTimeout = o.ReadTimeout
	}
	max := o.MaxHeaderBytes
	if max <= 0 {
		max = http.DefaultMaxHeaderBytes
	}
	s.headLimit = int64(max) + 4096 // net/http's slack for the bufio buffer
	if s.logger == nil {
		s.logger = slog.Default()
	}
	if o.TLSConfig != nil {
		s.h2 = o.H2
	}
	if s.h2 != nil {
		s.h2ln = newHandoff()
	} else {
		close(s.h2done)
	}
	return s
}

// Serve accepts connections on ln until Shutdown or Close, or until
// Accept fails for good. It returns nil when stopped, else Accept's error.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.acceptDone.Load() {
		s.mu.Unlock()
		return nil
	}
	s.lns[ln] = struct{}{}
	s.served.Add(1)
	s.mu.Unlock()
	defer s.served.Done()
	if s.h2 != nil {
		s.h2once.Do(func() {
			go func() {
				defer close(s.h2done)
				_ = s.h2.Serve(s.h2ln)
			}()
		})
	}
	var delay time.Duration
	for {
		rw, err := ln.Accept()
		if err != nil {
			if s.acceptDone.Load() {
				return nil // stopped: closed, or its backlog taken (see stopAccepting)
			}
			// Out of descriptors and the like: wait and try again, as
			// net/http does, rather than stop serving.
			if te, ok := err.(interface{ Temporary() bool }); ok && te.Temporary() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.logger.Warn("accepting a connection failed; retrying", "error", err, "in", delay)
				select {
				case <-time.After(delay):
				case <-s.stopped:
					return nil
				}
				continue
			}
			return fmt.Errorf("accepting on %s: %w", ln.Addr(), err)
		}
		delay = 0
		if s.o.TLSConfig != nil {
			rw = tls.Server(rw, s.o.TLSConfig)
		}
		c := newConn(s, rw)
		s.track(c)
		go c.serve()
	}
}

// track adds c to the open connections. One accepted as the server begins
// to drain is served all the same, its request answered with
// Connection: close: the client dialled a listening socket, and closing
// the connection unread would reset it, a failure it cannot tell from a
// request lost mid-way. Shutdown waits for the accept loops before it
// counts connections, so none is missed.
func (s *Server) track(c *conn) {
	s.mu.Lock()
	s.conns[c] = struct{}{}
	s.mu.Unlock()
}

func (s *Server) untrack(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// Shutdown stops accepting (taking what the listening socket had queued
// first, see stopAccepting), lets every connection answer the request it
// has read or is about to read (with Connection: close), and waits until
// all are gone or ctx ends; then it closes what is left and returns ctx's
// error. An idle keep-alive connection is not closed under its client:
// a client may be sending its next request on it at that moment, and a
// request lost that way is lost for good when it cannot be replayed
// (RFC 9112 section 9.3.1). It closes after answering its next request,
// with Connection: close, or at its idle timeout, whichever comes first.
// HTTP/2 connections get GOAWAY. Connections taken over by a handler
// (Hijack) are not waited for.
func (s *Server) Shutdown(ctx context.Context) error {
	s.beginStop()
	h2err, err := s.settle(ctx, s.closeIdle)
	if err != nil {
		return err
	}
	if h2err != nil {
		return fmt.Errorf("shutting down http/2: %w", h2err)
	}
	return nil
}

// settle is the end of Shutdown and HandOver: while the HTTP/2 server
// shuts down within ctx, it runs sweep every 5 ms until sweep reports no
// connection left open. If ctx ends first, it closes every connection
// left and returns ctx's error; else the HTTP/2 server's error, as h2err.
func (s *Server) settle(ctx context.Context, sweep func() int) (h2err, err error) {
	var h2 error
	h2done := make(chan struct{})
	go func() {
		defer close(h2done)
		if s.h2 != nil {
			h2 = s.h2.Shutdown(ctx)
		}
	}()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for sweep() > 0 {
		select {
		case <-ctx.Done():
			s.closeAll()
			<-h2done
			return nil, ctx.Err()
		case <-tick.C:
		}
	}
	<-h2done
	return h2, nil
}

// Close closes the listeners and every connection at once.
func (s *Server) Close() error {
	s.beginStop()
	s.closeAll()
	if s.h2 != nil {
		return s.h2.Close()
	}
	return nil
}

// beginStop makes the server drain: it stops accepting, taking what the
// listening sockets had queued, and answers with Connection: close from
// now on.
func (s *Server) beginStop() {
	s.stop.Do(func() {
		s.draining.Store(true)
		s.stopAccepting(true)
	})
}

// backlogWait is how long stopAccepting waits for one more connection in
// a listening socket's queue before it closes the socket.
const backlogWait = 5 * time.Millisecond

// stopAccepting ends the accept loops and closes the listeners. With
// backlog, a listener that has deadlines accepts what its socket had
// queued before it is closed: the kernel resets queued connections when
// their socket closes, and a client cannot tell such a reset from a
// request lost mid-way. Without backlog (a successor shares the socket
// and takes the queue) the listeners close at once.
func (s *Server) stopAccepting(backlog bool) {
	s.mu.Lock()
	s.acceptDone.Store(true)
	for ln := range s.lns {
		d, ok := ln.(interface{ SetDeadline(time.Time) error })
		if !backlog || !ok || d.SetDeadline(time.Now().Add(backlogWait)) != nil {
			_ = ln.Close()
		}
	}
	s.mu.Unlock()
	close(s.stopped)
	s.served.Wait()
	s.mu.Lock()
	for ln := range s.lns {
		_ = ln.Close()
	}
	s.mu.Unlock()
	if s.h2ln != nil {
		s.h2ln.close()
	}
}

// closeIdle closes new connections that have sent nothing for
// newConnGrace (as net/http's Shutdown does) and reports how many
// connections are still open. Idle keep-alive connections close by
// themselves (see Shutdown).
func (s *Server) closeIdle() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.closeIfIdle()
	}
	s.ended = len(s.conns) == 0
	return len(s.conns)
}

func (s *Server) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ended = true
	for c := range s.conns {
		_ = c.rwc.Close()
	}
}

// handoff is a net.Listener that returns connections pushed to it: the
// ones the server found to speak HTTP/2.
type handoff struct {
	ch     chan net.Conn
	done   chan struct{}
	closed sync.Once
}

func newHandoff() *handoff {
	return &handoff{ch: make(chan net.Conn), done: make(chan struct{})}
}

// push hands c over; false if the listener is closed.
func (h *handoff) push(c net.Conn) bool {
	select {
	case h.ch <- c:
		return true
	case <-h.done:
		return false
	}
}

func (h *handoff) Accept() (net.Conn, error) {
	select {
	case c := <-h.ch:
		return c, nil
	case <-h.done:
		return nil, net.ErrClosed
	}
}

func (h *handoff) close() { h.closed.Do(func() { close(h.done) }) }

func (h *handoff) Close() error { h.close(); return nil }

func (h *handoff) Addr() net.Addr { return handoffAddr{} }

type handoffAddr struct{}

func (handoffAddr) Network() string { return "h2c" }
func (handoffAddr) String() string  { return "h2c" }
