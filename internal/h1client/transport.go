// Package h1client is the proxy's HTTP/1.1 client: it sends a request to
// a backend on a pooled keep-alive connection and reads the response, the
// counterpart of internal/h1server, which serves HTTP/1.1 to clients.
//
// An exchange runs on its caller's goroutine: the request is written and
// the response head read there, and the response body is read from the
// connection by whoever reads the body. net/http's Transport instead runs
// a read loop and a write loop goroutine per connection and hands every
// request and response across them through channels and the scheduler;
// with one core that was the largest part of the proxy's cost per
// request.
//
// Framing is net/http's: a request is written as http.Request.Write
// writes it and a response parsed as http.ReadResponse parses it (the
// common heads by this package's own code, which fuzz targets hold to the
// same bytes and results, the rest by those functions), so Content-Length,
// chunked bodies with trailers, HEAD, 204, 304 and bodies delimited by the
// connection's close are handled as net/http handles them. What the
// client adds:
//   - a connection goes back to the idle pool only after its response
//     body was read to the end, the request was written in full and
//     neither side asked to close; a body closed early closes it;
//   - the end of the caller's attempt (fastpath.Attempt) closes the
//     connection, so a per-try timeout or a client that left cuts a hung
//     dial, read or write;
//   - 1xx responses go to the caller's hook; without one more than five
//     end the exchange; 101 hands over the connection (Upgrade,
//     WebSocket) as a writable body;
//   - a request body is written by a goroutine of the exchange while the
//     response is read, so a backend answering before it read the body
//     (or streaming both ways) is served; with Expect: 100-continue the
//     body waits for the 100, a final answer or a timeout;
//   - an idle connection the backend closed is noticed before reuse (on
//     Linux) and a request that failed on a reused connection before any
//     response byte is sent again on a fresh one when replay is safe, as
//     net/http does.
//
// It imports internal/fastpath (the contracts it serves the proxy by),
// internal/h1wire (the wire pieces it shares with the server) and
// internal/sockio; nothing else of the project.
package h1client

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/azimuthproxy/azimuth/internal/fastpath"
	"github.com/azimuthproxy/azimuth/internal/h1wire"
	"golang.org/x/net/http/httpguts"
)

// Options shape a Transport's connections. New takes them as they are:
// every duration and limit must be set.
type Options struct {
	// Dial opens a connection to a backend: network "tcp" and its
	// "host:port", or "unix" and the path of a "unix:/path" backend (see
	// UnixPrefix); ctx ends when the caller's attempt does. Nil means a
	// net.Dialer's.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// TLS, if not nil, makes connections TLS with these settings, HTTP/1.1
	// only whatever they offer by ALPN.
	TLS *tls.Config
	// HandshakeTimeout bounds a TLS handshake.
	HandshakeTimeout time.Duration
	// MaxIdlePerBackend keeps this many idle keep-alive connections per
	// backend address.
	MaxIdlePerBackend int
	// IdleTimeout closes a keep-alive connection idle this long.
	IdleTimeout time.Duration
	// MaxHeadBytes bounds a response head; each 1xx head counts on its
	// own.
	MaxHeadBytes int64
	// ExpectContinueTimeout is how long a request with Expect:
	// 100-continue waits for the backend's 100 before its body is sent
	// anyway.
	ExpectContinueTimeout time.Duration
	// ProxyHeader, if set, returns the PROXY protocol header a request's
	// connection begins with (before TLS). A connection then only carries
	// requests with the same header: the idle pool is kept per backend and
	// header, so one client's connection never serves another's request.
	ProxyHeader func(*http.Request) []byte
}

// target is where a request goes: the backend's address, the idle pool's
// key, and the PROXY header a new connection begins with.
type target struct {
	addr, key string
	header    []byte
}

// Transport sends requests to backends over HTTP/1.1, keeping idle
// connections per backend address.
type Transport struct {
	o    Options
	mu   sync.Mutex
	idle map[string][]*conn // per key (see target), most recently used last
	// idleBy counts the idle connections per backend address, across
	// keys: MaxIdlePerBackend holds per backend.
	idleBy map[string]int
}

var _ fastpath.AttemptSender = (*Transport)(nil)

// New returns a Transport with no connection yet.
func New(o Options) *Transport {
	if o.Dial == nil {
		o.Dial = (&net.Dialer{}).DialContext
	}
	return &Transport{o: o, idle: map[string][]*conn{}, idleBy: map[string]int{}}
}

// ErrAttemptEnded fails an exchange whose attempt ended before it could
// begin, or whose connection was made as it ended.
var ErrAttemptEnded = errors.New("http1 transport: the attempt ended")

// ErrBackendOut fails an exchange whose backend was taken out while its
// connection was being made (the attempt's SendAgain said no): nothing
// was sent, and the request body was not read.
var ErrBackendOut = errors.New("http1 transport: the backend was taken out while connecting; nothing sent")

// errBodyNotSent ends a request body that must not be sent: the backend
// gave its final answer to an Expect: 100-continue request first.
var errBodyNotSent = errors.New("request body not sent: the backend answered first")

// Send sends req on a pooled or new connection to req.URL.Host and reads
// the response head, within a: its end aborts the exchange (the
// connection is closed) until the response body is closed. got1xx, if not
// nil, receives the 1xx responses on this goroutine before the final
// response returns. The request's context is not consulted. On success
// the response body owns the connection: closing it returns the
// connection to the pool or closes it.
func (t *Transport) Send(req *http.Request, a fastpath.Attempt, got1xx func(int, textproto.MIMEHeader) error) (*http.Response, error) {
	if err := checkRequest(req); err != nil {
		closeRequestBody(req)
		return nil, err
	}
	to := target{addr: backendAddr(req.URL)}
	to.key = to.addr
	if t.o.ProxyHeader != nil {
		to.header = t.o.ProxyHeader(req)
		to.key = to.addr + "\x00" + string(to.header)
	}
	// fresh is set for the one resend: it goes on a connection dialled
	// for it, never on another idle one, so a request reaches a backend
	// at most twice however many idle connections the backend dropped.
	var failed error // what made the resend
	for fresh := false; ; fresh = true {
		// Nothing is set to abort here: Clear only asks whether the
		// attempt still runs.
		if !a.Clear() {
			closeRequestBody(req)
			return nil, ErrAttemptEnded
		}
		var c *conn
		var err error
		if fresh {
			c, err = t.dial(a, to)
			if err == nil && !a.SendAgain() {
				// The backend was taken out while the connection was
				// made: the caller sends the request elsewhere.
				_ = c.nc.Close()
				return nil, failed
			}
		} else {
			c, err = t.conn(a, to)
			if err == nil && !c.reused && !a.SendAgain() {
				// Taken out while the connection was made (under load,
				// requests picked just before an ejection would reach the
				// backend after it): nothing goes out, and the caller
				// sends the request elsewhere.
				_ = c.nc.Close()
				return nil, ErrBackendOut
			}
		}
		if err != nil {
			closeRequestBody(req)
			return nil, err
		}
		resp, err := c.roundTrip(req, a, got1xx)
		if err == nil {
			return resp, nil
		}
		if !c.reused || !c.sentAgainSafe(req) || !a.SendAgain() {
			return nil, err
		}
		failed = err
		// The backend closed a kept-alive connection as the request went
		// out: send it again once on a new connection, as net/http does,
		// unless the caller no longer wants this backend (its attempt
		// loop then sends it elsewhere). A dialled connection is not
		// reused, so the resend is the last.
	}
}

// checkRequest refuses what net/http's Transport refuses before sending.
func checkRequest(req *http.Request) error {
	if req.URL == nil || req.URL.Host == "" {
		return errors.New("http1 transport: request has no backend host")
	}
	if req.Method != "" && !h1wire.IsToken(req.Method) {
		return fmt.Errorf("http1 transport: invalid method %q", req.Method)
	}
	for k, vv := range req.Header {
		if !h1wire.IsToken(k) {
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

// backendAddr is the URL's host with the scheme's default port if it has
// none; a Unix socket's address as it is.
func backendAddr(u *url.URL) string {
	if u.Port() != "" || strings.HasPrefix(u.Host, UnixPrefix) {
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
func (t *Transport) conn(a fastpath.Attempt, to target) (*conn, error) {
	for {
		c := t.takeIdle(to.key)
		if c == nil {
			break
		}
		if c.closedByPeer() {
			_ = c.nc.Close()
			continue
		}
		c.reused = true
		return c, nil
	}
	return t.dial(a, to)
}

// dial connects to addr within a: its end cancels the dial and the TLS
// handshake.
func (t *Transport) dial(a fastpath.Attempt, to target) (*conn, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a.OnEnd(cancel)
	c, err := t.dialContext(ctx, to)
	if !a.Clear() {
		if err == nil {
			_ = c.nc.Close()
		}
		return nil, ErrAttemptEnded
	}
	return c, err
}

func (t *Transport) dialContext(ctx context.Context, to target) (*conn, error) {
	addr := to.addr
	network, dialAddr := dialTarget(addr)
	nc, err := t.o.Dial(ctx, network, dialAddr)
	if err != nil {
		return nil, err
	}
	if len(to.header) > 0 {
		// Before TLS: the header is the connection's first bytes. It is
		// at most a few dozen bytes, which a new socket's buffer takes
		// without blocking.
		if _, err := nc.Write(to.header); err != nil {
			_ = nc.Close()
			return nil, err
		}
	}
	raw := nc
	if t.o.TLS != nil {
		cfg := t.o.TLS
		if cfg.ServerName == "" || len(cfg.NextProtos) > 0 {
			cfg = cfg.Clone()
			if cfg.ServerName == "" {
				cfg.ServerName, _, _ = net.SplitHostPort(addr)
			}
			// This client speaks HTTP/1.1 only: never let ALPN pick
			// another protocol.
			cfg.NextProtos = nil
		}
		tc := tls.Client(nc, cfg)
		hctx, cancel := context.WithTimeout(ctx, t.o.HandshakeTimeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			_ = nc.Close()
			return nil, err
		}
		nc = tc
	}
	c := &conn{t: t, addr: to.key, nc: nc, raw: raw}
	c.limit.r = nc
	c.br = bufio.NewReaderSize(&c.limit, 4<<10)
	c.abort = func() { _ = c.nc.Close() }
	return c, nil
}

// takeIdle pops the most recently used idle connection to addr, or nil.
func (t *Transport) takeIdle(addr string) *conn {
	t.mu.Lock()
	defer t.mu.Unlock()
	list := t.idle[addr]
	if len(list) == 0 {
		return nil
	}
	c := list[len(list)-1]
	list[len(list)-1] = nil
	t.idle[addr] = list[:len(list)-1]
	t.forget(addr)
	c.idleTimer.Stop() // if it fired, expire finds c gone and leaves it
	return c
}

// backendOf is the backend address of an idle pool's key (see target).
func backendOf(key string) string {
	addr, _, _ := strings.Cut(key, "\x00")
	return addr
}

// forget counts one idle connection of key gone, and drops a client's key
// (PROXY headers) once it has none, so keys do not outlive their
// connections. The caller holds t.mu.
func (t *Transport) forget(key string) {
	b := backendOf(key)
	if t.idleBy[b]--; t.idleBy[b] <= 0 {
		delete(t.idleBy, b)
	}
	if key != b && len(t.idle[key]) == 0 {
		// A backend's own key keeps its empty list: the next put reuses
		// it without allocating.
		delete(t.idle, key)
	}
}

// putIdle keeps c for the next request to its backend, or closes it when
// the backend has enough idle connections.
func (t *Transport) putIdle(c *conn) {
	c.reused = false
	t.mu.Lock()
	// Counted per backend, whatever the keys: with PROXY headers a
	// backend has a key per client connection.
	b := backendOf(c.addr)
	if t.idleBy[b] >= t.o.MaxIdlePerBackend {
		t.mu.Unlock()
		_ = c.nc.Close()
		return
	}
	t.idleBy[b]++
	t.idle[c.addr] = append(t.idle[c.addr], c)
	if c.idleTimer == nil {
		c.idleTimer = time.AfterFunc(t.o.IdleTimeout, c.expire)
	} else {
		c.idleTimer.Reset(t.o.IdleTimeout)
	}
	t.mu.Unlock()
}

// removeIdle takes c out of the idle pool; false if it was not there
// (a request took it).
func (t *Transport) removeIdle(c *conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	list := t.idle[c.addr]
	for i, ic := range list {
		if ic == c {
			t.idle[c.addr] = append(list[:i], list[i+1:]...)
			t.forget(c.addr)
			return true
		}
	}
	return false
}

// CloseIdleConnections closes every idle connection. Connections in use
// are not affected.
func (t *Transport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle, t.idleBy = map[string][]*conn{}, map[string]int{}
	t.mu.Unlock()
	for _, list := range idle {
		for _, c := range list {
			c.idleTimer.Stop()
			_ = c.nc.Close()
		}
	}
}
