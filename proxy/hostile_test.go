package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/internal/h1server"
	"github.com/azimuthproxy/azimuth/internal/testwait"
	"github.com/prometheus/client_golang/prometheus"
)

// edgeLimits are a listener's server limits, as cmd/azimuth sets them from
// the config's limits block (defaults: configs/defaults.go).
type edgeLimits struct {
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	MaxHeaderBytes                                            int
	H2MaxConcurrentStreams                                    uint32
}

// defaultEdgeLimits mirrors the config defaults.
var defaultEdgeLimits = edgeLimits{
	ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 60 * time.Second, IdleTimeout: 120 * time.Second,
	MaxHeaderBytes: 64 << 10, H2MaxConcurrentStreams: 250,
}

// startEdge serves the proxy's handler from the proxy's own HTTP/1.1
// server (internal/h1server, h2c handed to an http.Server) configured the
// way cmd/azimuth/listeners.go configures a plain listener, on a loopback
// address, and returns that address.
func startEdge(t *testing.T, lim edgeLimits, lc ListenerConfig, pools ...PoolConfig) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := NewServer(ctx, Options{Logger: slog.New(slog.DiscardHandler), Metrics: NewMetrics(prometheus.NewRegistry())})
	g, err := s.Build(Config{Listeners: []ListenerConfig{lc}, Pools: pools})
	if err != nil {
		t.Fatal(err)
	}
	s.Publish(g)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	errLog := log.New(io.Discard, "", 0)
	logger := slog.New(slog.DiscardHandler)
	if testing.Verbose() {
		errLog = log.New(os.Stderr, "edge: ", 0)
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	srv := h1server.New(h1server.Options{
		Handler:           s.Handler(lc.Name),
		ReadHeaderTimeout: lim.ReadHeaderTimeout,
		ReadTimeout:       lim.ReadTimeout,
		WriteTimeout:      lim.WriteTimeout,
		IdleTimeout:       lim.IdleTimeout,
		MaxHeaderBytes:    lim.MaxHeaderBytes,
		Logger:            logger,
		H2C: &http.Server{
			Handler:           s.Handler(lc.Name),
			ReadHeaderTimeout: lim.ReadHeaderTimeout,
			ReadTimeout:       lim.ReadTimeout,
			WriteTimeout:      lim.WriteTimeout,
			IdleTimeout:       lim.IdleTimeout,
			MaxHeaderBytes:    lim.MaxHeaderBytes,
			Protocols:         &protos,
			HTTP2:             &http.HTTP2Config{MaxConcurrentStreams: int(lim.H2MaxConcurrentStreams)},
			ErrorLog:          errLog,
		},
	})
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	// One question the server answers itself (OPTIONS *): once it is
	// answered, the server runs, its own goroutines with it, so a test's
	// goroutine baseline counts them.
	if res := sendRaw(t, ln.Addr().String(), "OPTIONS * HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\n\r\n", false); res.resp == nil || res.resp.StatusCode != 200 {
		t.Fatalf("the edge server does not answer: %+v", res)
	}
	t.Cleanup(func() {
		_ = srv.Close()
		<-done
		for _, p := range pools {
			if c, ok := p.Transport.(interface{ CloseIdleConnections() }); ok {
				c.CloseIdleConnections()
			}
		}
		cancel()
		s.Wait()
	})
	return ln.Addr().String()
}

// seenRequest is what a recordingBackend received on one request.
type seenRequest struct {
	raw      string // request line and header block, as sent
	host     string
	header   http.Header
	body     string
	complete bool // the body arrived whole, as framed
}

// recordingBackend is a raw HTTP/1.1 backend that keeps the exact bytes of
// every request head it gets and whether each body arrived whole; it
// answers 200 "ok".
type recordingBackend struct {
	addr string
	mu   sync.Mutex
	seen []seenRequest
}

func startRecordingBackend(t *testing.T) *recordingBackend {
	t.Helper()
	b := &recordingBackend{}
	b.addr = serveRaw(t, "127.0.1.1", func(c net.Conn) {
		var head bytes.Buffer
		br := bufio.NewReader(io.TeeReader(c, &head))
		for {
			head.Reset()
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			raw := head.String()
			if i := strings.Index(raw, "\r\n\r\n"); i >= 0 {
				raw = raw[:i+2]
			}
			body, err := io.ReadAll(req.Body)
			b.mu.Lock()
			b.seen = append(b.seen, seenRequest{raw: raw, host: req.Host, header: req.Header, body: string(body), complete: err == nil})
			b.mu.Unlock()
			if err != nil {
				return
			}
			if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"); err != nil {
				return
			}
		}
	})
	return b
}

func (b *recordingBackend) requests() []seenRequest {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]seenRequest(nil), b.seen...)
}

// serveRaw accepts TCP connections on ip and runs serve on each until the
// test ends; it returns the address.
func serveRaw(t *testing.T, ip string, serve func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatalf("listening on %s: %v", ip, err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// rawResult is what a client sending exact bytes got back.
type rawResult struct {
	resp   *http.Response // nil if no response could be read
	body   string
	closed bool // the proxy closed the connection after the response
	// informational counts the 1xx responses before the final one.
	informational int
}

// sendRaw writes req to addr as it is, reads one response and reports
// whether the connection was closed afterwards. closeWrite half-closes
// the connection after writing, as a client that went away would.
func sendRaw(t *testing.T, addr, req string, closeWrite bool) rawResult {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatalf("writing request: %v", err)
	}
	if closeWrite {
		_ = c.(*net.TCPConn).CloseWrite()
	}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	var res rawResult
	var resp *http.Response
	for {
		resp, err = http.ReadResponse(br, nil)
		if err != nil {
			res.closed = true // nothing readable: the connection ended
			return res
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
		res.informational++
	}
	b, _ := io.ReadAll(resp.Body)
	res.resp, res.body = resp, string(b)
	// A closed connection reads EOF at once; an open one times out.
	_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	_, err = br.ReadByte()
	res.closed = err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
	return res
}

// fixedAnswers are the only bodies the proxy itself writes; the server's
// own 4xx answers start with the status. No answer carries an address, a
// Go error or a backend's words.
func checkPublicBody(t *testing.T, code int, body string) {
	t.Helper()
	switch body {
	case "", "no route\n", "request body too large\n", "request body incomplete\n",
		"backend failed\n", "backend timed out\n", "no backend available\n", "ok",
		"Unsupported transfer encoding":
		return
	}
	if strings.HasPrefix(body, http.StatusText(code)) || strings.HasPrefix(body, "4") {
		if strings.Contains(body, "127.0.") || strings.Contains(body, "dial") {
			t.Errorf("body %q leaks internal detail", body)
		}
		return
	}
	t.Errorf("body %q is not one of the fixed answers", body)
}

// Hostile request framing and headers, sent byte for byte to a listener
// configured like the binary's. The backend records exactly what reaches it.
func TestHostileRequests(t *testing.T) {
	const chunkedHello = "5\r\nhello\r\n0\r\n\r\n"
	for _, tc := range []struct {
		name       string
		req        string
		closeWrite bool
		status     int  // 0: no response at all is also acceptable
		closed     bool // the connection must be closed after the answer
		// forwarded is the number of requests the backend may see; check
		// inspects them.
		forwarded int
		check     func(t *testing.T, seen []seenRequest)
	}{
		{
			name: "content-length and chunked: re-framed once, connection closed, nothing smuggled",
			req: "POST /a HTTP/1.1\r\nHost: app.example\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n" +
				chunkedHello + "GET /smuggled HTTP/1.1\r\nHost: app.example\r\n\r\n",
			status: 200, closed: true, forwarded: 1,
			check: func(t *testing.T, seen []seenRequest) {
				r := seen[0]
				hasCL := strings.Contains(strings.ToLower(r.raw), "\r\ncontent-length:")
				hasTE := strings.Contains(strings.ToLower(r.raw), "\r\ntransfer-encoding:")
				if hasCL == hasTE {
					t.Errorf("backend got ambiguous framing (content-length %v, transfer-encoding %v):\n%s", hasCL, hasTE, r.raw)
				}
				if r.body != "hello" || !r.complete {
					t.Errorf("backend body %q (complete %v), want hello", r.body, r.complete)
				}
			},
		},
		{
			name:   "chunked request alone: forwarded, connection closed after it",
			req:    "POST /a HTTP/1.1\r\nHost: app.example\r\nTransfer-Encoding: chunked\r\n\r\n" + chunkedHello,
			status: 200, closed: true, forwarded: 1,
		},
		{
			name:   "two transfer-encodings: 501",
			req:    "POST /a HTTP/1.1\r\nHost: app.example\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n" + chunkedHello,
			status: 501, closed: true,
		},
		{
			name:   "transfer-encoding other than chunked: 501",
			req:    "POST /a HTTP/1.1\r\nHost: app.example\r\nTransfer-Encoding: gzip, chunked\r\n\r\n" + chunkedHello,
			status: 501, closed: true,
		},
		{
			name:   "differing content-lengths: 400",
			req:    "POST /a HTTP/1.1\r\nHost: app.example\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
			status: 400, closed: true,
		},
		{
			name:   "invalid content-length: 400",
			req:    "POST /a HTTP/1.1\r\nHost: app.example\r\nContent-Length: 5x\r\n\r\nhello",
			status: 400, closed: true,
		},
		{
			name:   "negative content-length: 400",
			req:    "POST /a HTTP/1.1\r\nHost: app.example\r\nContent-Length: -1\r\n\r\nhello",
			status: 400, closed: true,
		},
		{
			name:   "repeated equal content-length: forwarded once with one",
			req:    "POST /a HTTP/1.1\r\nHost: app.example\r\nContent-Length: 5\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
			status: 200, closed: true, forwarded: 1,
			check: func(t *testing.T, seen []seenRequest) {
				if n := strings.Count(strings.ToLower(seen[0].raw), "content-length:"); n != 1 {
					t.Errorf("backend got %d content-length fields:\n%s", n, seen[0].raw)
				}
			},
		},
		{
			// RFC 9112 section 5.2: a proxy must reject obs-fold or replace
			// it with a space before forwarding. net/http does the latter,
			// so the backend sees the value the proxy saw.
			name:   "obsolete line folding: 400, nothing forwarded",
			req:    "GET /a HTTP/1.1\r\nHost: app.example\r\nX-Folded: one\r\n two\r\nConnection: close\r\n\r\n",
			status: 400, closed: true,
		},
		{
			name:   "bare CR in a field: 400, nothing forwarded",
			req:    "GET /a HTTP/1.1\r\nHost: app.example\r\nX-A: one\rX-B: two\r\n\r\n",
			status: 400, closed: true,
		},
		{
			name:   "folded host: 400",
			req:    "GET /a HTTP/1.1\r\nHost: app.example\r\n evil.example\r\n\r\n",
			status: 400, closed: true,
		},
		{
			name:   "two hosts: 400",
			req:    "GET /a HTTP/1.1\r\nHost: app.example\r\nHost: evil.example\r\n\r\n",
			status: 400, closed: true,
		},
		{
			name:   "no host: 400",
			req:    "GET /a HTTP/1.1\r\n\r\n",
			status: 400, closed: true,
		},
		{
			name:   "space in a header name: 400",
			req:    "GET /a HTTP/1.1\r\nHost: app.example\r\nX Bad: 1\r\n\r\n",
			status: 400, closed: true,
		},
		{
			name:   "space before the colon: 400",
			req:    "GET /a HTTP/1.1\r\nHost: app.example\r\nTransfer-Encoding : chunked\r\n\r\n",
			status: 400, closed: true,
		},
		{
			name:   "header without colon: 400",
			req:    "GET /a HTTP/1.1\r\nHost: app.example\r\nX-Bad\r\n\r\n",
			status: 400, closed: true,
		},
		{
			name:   "control byte in a header value: 400",
			req:    "GET /a HTTP/1.1\r\nHost: app.example\r\nX-Bad: a\x00b\r\n\r\n",
			status: 400, closed: true,
		},
		{
			name:   "bare LF line endings are read as lines, forwarded with CRLF",
			req:    "GET /a HTTP/1.1\nHost: app.example\nConnection: close\n\n",
			status: 200, closed: true, forwarded: 1,
			check: func(t *testing.T, seen []seenRequest) {
				if strings.Contains(strings.ReplaceAll(seen[0].raw, "\r\n", ""), "\n") {
					t.Errorf("backend got a bare LF:\n%q", seen[0].raw)
				}
			},
		},
		{
			name:   "malformed request line: 400",
			req:    "GET /a HTTP/1.1 extra\r\nHost: app.example\r\n\r\n",
			status: 400, closed: true,
		},
		{
			name:   "header block over max_header_bytes: 431",
			req:    "GET /a HTTP/1.1\r\nHost: app.example\r\nX-Big: " + strings.Repeat("b", 80<<10) + "\r\n\r\n",
			status: 431, closed: true,
		},
		{
			name:   "many small headers over max_header_bytes: 431",
			req:    "GET /a HTTP/1.1\r\nHost: app.example\r\n" + strings.Repeat("X-H: 0123456789012345678901234567890123456789\r\n", 2000) + "\r\n",
			status: 431, closed: true,
		},
		{
			name:   "truncated replayable body under the replay cap: never forwarded",
			req:    "PUT /a HTTP/1.1\r\nHost: app.example\r\nContent-Length: 100\r\n\r\n0123456789",
			status: 400, closeWrite: true, closed: true,
		},
		{
			// A POST's body is never buffered (it cannot be replayed): it
			// streams, and the backend's connection breaks with it.
			name:   "truncated POST body: the backend never sees it whole",
			req:    "POST /a HTTP/1.1\r\nHost: app.example\r\nContent-Length: 100\r\n\r\n0123456789",
			status: 400, closeWrite: true, closed: true, forwarded: 1,
			check: func(t *testing.T, seen []seenRequest) {
				if seen[0].complete {
					t.Errorf("backend got a complete-looking request of %d bytes", len(seen[0].body))
				}
			},
		},
		{
			name:       "truncated body over the replay cap: the backend never sees it whole",
			req:        "POST /a HTTP/1.1\r\nHost: app.example\r\nContent-Length: 4000\r\n\r\n" + strings.Repeat("x", 2000),
			closeWrite: true, closed: true, forwarded: 1,
			check: func(t *testing.T, seen []seenRequest) {
				if seen[0].complete {
					t.Errorf("backend got a complete-looking request of %d bytes", len(seen[0].body))
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := startRecordingBackend(t)
			addr := startEdge(t, defaultEdgeLimits, ListenerConfig{Name: "http", Routes: []Route{{Pool: "app"}}}, singleBackendPool(b.addr, "http1"))
			res := sendRaw(t, addr, tc.req, tc.closeWrite)
			switch {
			case res.resp == nil && tc.status != 0:
				t.Fatalf("no response, want %d", tc.status)
			case res.resp != nil && tc.status != 0 && res.resp.StatusCode != tc.status:
				t.Errorf("status %d (%q), want %d", res.resp.StatusCode, res.body, tc.status)
			}
			if res.resp != nil {
				checkPublicBody(t, res.resp.StatusCode, res.body)
			}
			if tc.closed && !res.closed {
				t.Errorf("connection still open after the answer")
			}
			// The backend's record of a streamed body ends when the proxy
			// gives up on it.
			if tc.forwarded > 0 {
				testwait.Until(t, 5*time.Second, "the backend's record", func() bool { return len(b.requests()) >= tc.forwarded })
			}
			seen := b.requests()
			if len(seen) != tc.forwarded {
				for _, r := range seen {
					t.Logf("backend got:\n%s", r.raw)
				}
				t.Fatalf("backend got %d requests, want %d", len(seen), tc.forwarded)
			}
			if tc.check != nil {
				tc.check(t, seen)
			}
		})
	}
}

// An absolute-form target names the host (RFC 9112 section 3.2.2: it wins
// over the Host field). The proxy routes on that host and the backend
// receives that same host, with the target in origin form.
func TestAbsoluteFormRoutesAndForwardsOneHost(t *testing.T) {
	app, other := startRecordingBackend(t), startRecordingBackend(t)
	pa, po := singleBackendPool(app.addr, "http1"), singleBackendPool(other.addr, "http1")
	po.Name = "other"
	lc := ListenerConfig{Name: "http", Routes: []Route{{Host: "app.example", Pool: "app"}, {Host: "other.example", Pool: "other"}}}
	addr := startEdge(t, defaultEdgeLimits, lc, pa, po)
	for _, tc := range []struct {
		name, req string
		want      *recordingBackend
		host      string
	}{
		{"absolute form and its host field agree", "GET http://other.example/p?q=1 HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n\r\n", other, "other.example"},
		{"absolute form with a port", "GET http://other.example:8080/p?q=1 HTTP/1.1\r\nHost: other.example:8080\r\nConnection: close\r\n\r\n", other, "other.example:8080"},
		{"origin form uses the host field", "GET /p?q=1 HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\n\r\n", app, "app.example"},
		// Which name would the next hop read? Neither: refused.
		{"absolute form and a host field that disagree", "GET http://other.example/p?q=1 HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\n\r\n", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.want == nil {
				before := len(app.requests()) + len(other.requests())
				res := sendRaw(t, addr, tc.req, false)
				if res.resp == nil || res.resp.StatusCode != 400 {
					t.Fatalf("response %+v, want 400", res.resp)
				}
				if n := len(app.requests()) + len(other.requests()); n != before {
					t.Fatalf("a backend got the request (%d requests, %d before)", n, before)
				}
				return
			}
			before := len(tc.want.requests())
			res := sendRaw(t, addr, tc.req, false)
			if res.resp == nil || res.resp.StatusCode != 200 {
				t.Fatalf("response %+v, want 200", res.resp)
			}
			seen := tc.want.requests()
			if len(seen) != before+1 {
				t.Fatalf("routed elsewhere: the expected backend has %d requests, want %d", len(seen), before+1)
			}
			r := seen[len(seen)-1]
			if r.host != tc.host {
				t.Errorf("backend got Host %q, want %q", r.host, tc.host)
			}
			if !strings.HasPrefix(r.raw, "GET /p?q=1 HTTP/1.1\r\n") {
				t.Errorf("backend request line: %q", strings.SplitN(r.raw, "\r\n", 2)[0])
			}
		})
	}
}

// A client that sends its head or body a byte at a time is cut off by the
// listener's read_header_timeout and read_timeout; nothing reaches the
// backend.
func TestSlowClientsAreCutOff(t *testing.T) {
	for _, tc := range []struct {
		name string
		head string // sent at once
		drip string // then one byte every 50ms
	}{
		{"slow headers", "GET /a HTTP/1.1\r\nHost: app.example\r\n", strings.Repeat("X-Drip: 1\r\n", 100)},
		{"slow replayable body", "PUT /a HTTP/1.1\r\nHost: app.example\r\nContent-Length: 1000\r\n\r\n", strings.Repeat("x", 1000)},
		{"slow POST body", "POST /a HTTP/1.1\r\nHost: app.example\r\nContent-Length: 1000\r\n\r\n", strings.Repeat("x", 1000)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := startRecordingBackend(t)
			lim := defaultEdgeLimits
			lim.ReadHeaderTimeout, lim.ReadTimeout = 300*time.Millisecond, 600*time.Millisecond
			addr := startEdge(t, lim, ListenerConfig{Name: "http", Routes: []Route{{Pool: "app"}}}, singleBackendPool(b.addr, "http1"))
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			start := time.Now()
			if _, err := io.WriteString(c, tc.head); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(c)
			var answer *http.Response
			closed := false
			for i := 0; i < len(tc.drip) && !closed; i++ {
				if _, err := c.Write([]byte{tc.drip[i]}); err != nil {
					closed = true
					break
				}
				// The 50ms read is the drip's pace; it also sees the close.
				_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
				if _, err := br.Peek(1); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
					closed = true
				} else if err == nil {
					_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
					if answer, err = http.ReadResponse(br, nil); err == nil {
						body, _ := io.ReadAll(answer.Body)
						checkPublicBody(t, answer.StatusCode, string(body))
					}
					closed = true
				}
			}
			took := time.Since(start)
			if !closed {
				t.Fatalf("connection still open after dripping for %v", took)
			}
			// A streaming POST body: the server may end the request as
			// the client's time runs out before the proxy sees the body
			// break, and it then answers as to a client that left (499).
			if answer != nil && answer.StatusCode != http.StatusBadRequest && answer.StatusCode != http.StatusRequestTimeout &&
				!(strings.HasPrefix(tc.head, "POST") && answer.StatusCode == 499) {
				t.Errorf("slow client answered %d, want 400, 408 or nothing", answer.StatusCode)
			}
			t.Logf("cut off after %v (answer %v)", took, answer != nil)
			if !strings.HasPrefix(tc.head, "POST") {
				if n := len(b.requests()); n != 0 {
					t.Errorf("backend got %d requests from a slow client", n)
				}
				return
			}
			// A POST body streams: the backend gets the head, and its
			// connection breaks before the body is whole.
			testwait.Until(t, 5*time.Second, "the backend's record", func() bool { return len(b.requests()) == 1 })
			if r := b.requests()[0]; r.complete {
				t.Errorf("backend got a complete request of %d bytes from a slow client", len(r.body))
			}
		})
	}
}

// Forwarding headers beyond the three the proxy sets itself (Port,
// Prefix, X-Real-Ip, underscore spellings that CGI-style servers read as
// dashes) never reach a backend from an untrusted client; from a trusted
// proxy only the proper spellings do.
func TestSpoofedForwardingHeadersDropped(t *testing.T) {
	const in = "X-Forwarded-Port: 1\r\nX-Forwarded-Prefix: /admin\r\nX-Real-IP: 6.6.6.6\r\nX_Forwarded_For: 6.6.6.6\r\nx-forwarded_proto: https\r\nForwarded: for=6.6.6.6\r\n"
	for _, tc := range []struct {
		name    string
		trusted []netip.Prefix
		want    map[string]string // header -> value; "" absent
	}{
		{"untrusted", nil, map[string]string{
			"X-Forwarded-Port": "", "X-Forwarded-Prefix": "", "X-Real-Ip": "", "X_forwarded_for": "", "X-Forwarded_proto": "", "Forwarded": "",
			"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Proto": "http",
		}},
		{"trusted", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, map[string]string{
			"X-Forwarded-Port": "1", "X-Forwarded-Prefix": "/admin", "X-Real-Ip": "6.6.6.6", "X_forwarded_for": "", "X-Forwarded_proto": "",
			"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Proto": "http",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := startRecordingBackend(t)
			lc := ListenerConfig{Name: "http", Routes: []Route{{Pool: "app"}}, TrustedProxies: tc.trusted}
			addr := startEdge(t, defaultEdgeLimits, lc, singleBackendPool(b.addr, "http1"))
			res := sendRaw(t, addr, "GET /a HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\n"+in+"\r\n", false)
			if res.resp == nil || res.resp.StatusCode != 200 {
				t.Fatalf("response %+v, want 200", res.resp)
			}
			seen := b.requests()
			if len(seen) != 1 {
				t.Fatalf("backend got %d requests", len(seen))
			}
			for k, want := range tc.want {
				if got := strings.Join(seen[0].header[k], ", "); got != want {
					t.Errorf("%s = %q, want %q\n%s", k, got, want, seen[0].raw)
				}
			}
		})
	}
}
