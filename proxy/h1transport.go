package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"
)

// h1Transport is the proxy's HTTP/1.1 transport. An attempt writes its
// request and reads the response head on the request's own goroutine, and
// the response body is read from the connection by whoever reads the body
// (the forwarder, on the same goroutine). net/http's Transport instead runs
// a read loop and a write loop goroutine per connection and hands every
// request and response across them through channels and the scheduler;
// with one core that was the largest part of the proxy's cost per request.
//
// Framing is net/http's: a request is written as http.Request.Write
// writes it and a response parsed as http.ReadResponse parses it (the
// common heads by the transport's own code, which fuzz targets hold to the
// same bytes and results, the rest by those functions), so Content-Length,
// chunked bodies with trailers, HEAD, 204, 304 and bodies delimited by the
// connection's close are handled as net/http handles them. What the
// transport adds:
//   - a connection goes back to the idle pool only after its response
//     body was read to the end, the request was written in full and
//     neither side asked to close; a body closed early closes it;
//   - the end of the attempt's lifetime closes the connection, so a
//     per-try timeout or a client that left cuts a hung dial, read or
//     write;
//   - 1xx responses go to the caller's hook (the forwarder's, with its
//     own cap) or the request's httptrace Got1xxResponse; without one more
//     than five end the attempt; 101 hands over the connection
//     (Upgrade, WebSocket) as a writable body;
//   - a request body is written by a goroutine of the attempt while the
//     response is read, so a backend answering before it read the body
//     (or streaming both ways) is served; with Expect: 100-continue the
//     body waits for the 100, a final answer or one second;
//   - an idle connection the backend closed is noticed before reuse (on
//     Linux) and a request that failed on a reused connection before any
//     response byte is sent again on a fresh one when replay is safe, as
//     net/http does.
type h1Transport struct {
	dialer      net.Dialer
	tls         *tls.Config
	connect     time.Duration
	maxIdle     int
	idleTimeout time.Duration

	mu   sync.Mutex
	idle map[string][]*backendConn // per address, most recently used last
}

var _ Transport = (*h1Transport)(nil)

func newH1Transport(o TransportOptions) *h1Transport {
	return &h1Transport{
		dialer:      net.Dialer{Timeout: o.Connect, KeepAlive: 30 * time.Second},
		tls:         o.TLS,
		connect:     o.Connect,
		maxIdle:     o.MaxIdlePerBackend,
		idleTimeout: o.IdleTimeout,
		idle:        map[string][]*backendConn{},
	}
}

// errBodyNotSent ends a request body that must not be sent: the backend
// gave its final answer to an Expect: 100-continue request first.
var errBodyNotSent = errors.New("request body not sent: the backend answered first")

// RoundTrip sends req on a pooled or new connection to req.URL.Host. 1xx
// responses go to the request's httptrace Got1xxResponse hook, if any.
// The request's context ends the attempt until the response body is
// closed.
func (t *h1Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	var got1xx func(int, textproto.MIMEHeader) error
	if trace := httptrace.ContextClientTrace(req.Context()); trace != nil {
		got1xx = trace.Got1xxResponse
	}
	life := startLifetime(req.Context(), 0)
	resp, err := t.roundTrip(req, life, got1xx)
	if err != nil {
		life.finish()
		return nil, err
	}
	if rw, ok := resp.Body.(io.ReadWriteCloser); ok { // 101: the connection
		resp.Body = &finishingRWBody{finishingBody{rw, life}, rw}
	} else {
		resp.Body = &finishingBody{resp.Body, life}
	}
	return resp, nil
}

// finishingBody ends its attempt's lifetime when closed.
type finishingBody struct {
	io.ReadCloser
	life *lifetime
}

func (b *finishingBody) Close() error {
	err := b.ReadCloser.Close()
	b.life.finish()
	return err
}

type finishingRWBody struct {
	finishingBody
	w io.Writer
}

func (b *finishingRWBody) Write(p []byte) (int, error) { return b.w.Write(p) }

// roundTrip is RoundTrip within an attempt's lifetime, whose end aborts
// the exchange (the connection is closed), with the receiver of 1xx
// responses given, called on the request's goroutine before the final
// response returns. The request's context is not consulted.
func (t *h1Transport) roundTrip(req *http.Request, life *lifetime, got1xx func(int, textproto.MIMEHeader) error) (*http.Response, error) {
	if err := checkRequest(req); err != nil {
		closeRequestBody(req)
		return nil, err
	}
	addr := backendAddr(req.URL)
	for {
		if life.Cause() != nil {
			closeRequestBody(req)
			return nil, errAttemptEnded
		}
		bc, err := t.conn(life, addr)
		if err != nil {
			closeRequestBody(req)
			return nil, err
		}
		resp, err := bc.roundTrip(req, life, got1xx)
		if err == nil {
			return resp, nil
		}
		if !bc.reused || !bc.sentAgainSafe(req) || life.Cause() != nil || life.out != nil && life.out.backendOut() {
			return nil, err
		}
		// The backend closed a kept-alive connection as the request went
		// out: send it again on another connection, as net/http does,
		// unless health took the backend out meanwhile (the attempt loop
		// then sends it elsewhere).
	}
}

// checkRequest refuses what net/http's Transport refuses before sending.
func checkRequest(req *http.Request) error {
	if req.URL == nil || req.URL.Host == "" {
		return errors.New("http1 transport: request has no backend host")
	}
	if req.Method != "" && !validMethod(req.Method) {
		return fmt.Errorf("http1 transport: invalid method %q", req.Method)
	}
	for k, vv := range req.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return fmt.Errorf("http1 transport: invalid header field name %q", k)
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return fmt.Errorf("http1 transport: invalid header field value for %q", k)
			}
		}
	}
	return nil
}

func validMethod(m string) bool {
	return len(m) > 0 && strings.IndexFunc(m, func(r rune) bool { return !httpguts.IsTokenRune(r) }) < 0
}

// backendAddr is the URL's host with the scheme's default port if it has
// none.
func backendAddr(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	if u.Scheme == "https" {
		return net.JoinHostPort(u.Hostname(), "443")
	}
	return net.JoinHostPort(u.Hostname(), "80")
}

func closeRequestBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}

// conn returns an idle connection to addr that the backend has not
// closed, or dials a new one.
func (t *h1Transport) conn(life *lifetime, addr string) (*backendConn, error) {
	for {
		bc := t.takeIdle(addr)
		if bc == nil {
			break
		}
		if bc.closedByPeer() {
			_ = bc.conn.Close()
			continue
		}
		bc.reused = true
		return bc, nil
	}
	return t.dial(life, addr)
}

// errAttemptEnded fails a connection that was made as its attempt ended.
var errAttemptEnded = errors.New("http1 transport: the attempt ended")

// dial connects to addr, within the attempt's lifetime: its end cancels
// the dial and the TLS handshake.
func (t *h1Transport) dial(life *lifetime, addr string) (*backendConn, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	life.onEnd(cancel)
	bc, err := t.dialContext(ctx, addr)
	if !life.clear() {
		if err == nil {
			_ = bc.conn.Close()
		}
		return nil, errAttemptEnded
	}
	return bc, err
}

func (t *h1Transport) dialContext(ctx context.Context, addr string) (*backendConn, error) {
	c, err := dialTCP(ctx, &t.dialer, "tcp", addr)
	if err != nil {
		return nil, err
	}
	raw := c
	if t.tls != nil {
		cfg := t.tls
		if cfg.ServerName == "" || len(cfg.NextProtos) > 0 {
			cfg = cfg.Clone()
			if cfg.ServerName == "" {
				cfg.ServerName, _, _ = net.SplitHostPort(addr)
			}
			// This transport speaks HTTP/1.1 only: never let ALPN pick
			// another protocol.
			cfg.NextProtos = nil
		}
		tc := tls.Client(c, cfg)
		hctx, cancel := context.WithTimeout(ctx, t.connect)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			_ = c.Close()
			return nil, err
		}
		c = tc
	}
	bc := &backendConn{t: t, addr: addr, conn: c, raw: raw}
	bc.limit.r = c
	bc.br = bufio.NewReaderSize(&bc.limit, 4<<10)
	bc.abort = func() { _ = bc.conn.Close() }
	return bc, nil
}

// takeIdle pops the most recently used idle connection to addr, or nil.
func (t *h1Transport) takeIdle(addr string) *backendConn {
	t.mu.Lock()
	defer t.mu.Unlock()
	list := t.idle[addr]
	if len(list) == 0 {
		return nil
	}
	bc := list[len(list)-1]
	list[len(list)-1] = nil
	t.idle[addr] = list[:len(list)-1]
	bc.idleTimer.Stop() // if it fired, expire finds bc gone and leaves it
	return bc
}

// putIdle keeps bc for the next request to its backend, or closes it when
// the backend has enough idle connections.
func (t *h1Transport) putIdle(bc *backendConn) {
	bc.reused = false
	t.mu.Lock()
	list := t.idle[bc.addr]
	if len(list) >= t.maxIdle {
		t.mu.Unlock()
		_ = bc.conn.Close()
		return
	}
	t.idle[bc.addr] = append(list, bc)
	if bc.idleTimer == nil {
		bc.idleTimer = time.AfterFunc(t.idleTimeout, bc.expire)
	} else {
		bc.idleTimer.Reset(t.idleTimeout)
	}
	t.mu.Unlock()
}

// removeIdle takes bc out of the idle pool; false if it was not there
// (a request took it).
func (t *h1Transport) removeIdle(bc *backendConn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	list := t.idle[bc.addr]
	for i, c := range list {
		if c == bc {
			t.idle[bc.addr] = append(list[:i], list[i+1:]...)
			if len(t.idle[bc.addr]) == 0 {
				delete(t.idle, bc.addr)
			}
			return true
		}
	}
	return false
}

// CloseIdleConnections closes every idle connection. Connections in use
// are not affected.
func (t *h1Transport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = map[string][]*backendConn{}
	t.mu.Unlock()
	for _, list := range idle {
		for _, bc := range list {
			bc.idleTimer.Stop()
			_ = bc.conn.Close()
		}
	}
}
