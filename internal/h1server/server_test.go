package h1server

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/internal/testwait"
)

// start serves h on a loopback port and returns its address. The server
// is closed when the test ends.
func start(t *testing.T, o Options) (*Server, string) {
	t.Helper()
	return startOn(t, listen(t, true), o)
}

// listen listens on a loopback port. With peek false its connections hide
// their socket (no SyscallConn), so the watch reads into a buffer of its
// own instead of peeking.
func listen(t *testing.T, peek bool) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if !peek {
		return noPeekListener{ln}
	}
	return ln
}

type noPeekListener struct{ net.Listener }

func (l noPeekListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return noPeekConn{c}, nil
}

type noPeekConn struct{ net.Conn }

func (c noPeekConn) CloseWrite() error { return c.Conn.(*net.TCPConn).CloseWrite() }

// watchModes runs f once with each way of watching: peeking at the socket
// (what every TCP connection gets on Linux) and reading into a buffer.
func watchModes(t *testing.T, f func(t *testing.T, peek bool)) {
	for _, peek := range []bool{true, false} {
		name := "read"
		if peek {
			name = "peek"
		}
		t.Run(name, func(t *testing.T) { f(t, peek) })
	}
}

// checkWatchMode fails the test unless c's watch ran as peek says: with
// the peek, and no buffer of its own, or reading into one.
func checkWatchMode(t *testing.T, c *conn, peek bool) {
	t.Helper()
	testwait.Until(t, 5*time.Second, "the watch to run", func() bool {
		c.r.mu.Lock()
		defer c.r.mu.Unlock()
		return c.r.peekInit
	})
	c.r.mu.Lock()
	defer c.r.mu.Unlock()
	if peeked := c.r.peeker != nil; peeked != peek || peek && c.r.buf != nil || !peek && c.r.buf == nil {
		t.Fatalf("the watch peeked %v with a buffer of %d bytes; want peek %v", peeked, len(c.r.buf), peek)
	}
}

func startOn(t *testing.T, ln net.Listener, o Options) (*Server, string) {
	t.Helper()
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s := New(o)
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		_ = s.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return s, ln.Addr().String()
}

func serve(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	_, addr := start(t, Options{Handler: h})
	return addr
}

// client is a raw connection to the server with a reader for its answers.
type client struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return &client{t: t, c: c, br: bufio.NewReader(c)}
}

func (c *client) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.c, s); err != nil {
		c.t.Fatal(err)
	}
}

// read reads one response to a request with method and its whole body.
func (c *client) read(method string) (*http.Response, string) {
	c.t.Helper()
	resp, err := http.ReadResponse(c.br, &http.Request{Method: method})
	if err != nil {
		c.t.Fatalf("reading a response: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("reading a response body: %v", err)
	}
	return resp, string(b)
}

// closed reports whether the server closed the connection.
func (c *client) closed() bool {
	c.t.Helper()
	_ = c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := c.br.ReadByte()
	return err == io.EOF
}

func TestKeepAliveAndFraming(t *testing.T) {
	big := strings.Repeat("x", 3*bufferBeforeChunking)
	addr := serve(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/short": // unknown length, ends within the held buffer
			_, _ = io.WriteString(w, "hello")
		case "/long": // unknown length, outgrows it
			_, _ = io.WriteString(w, big)
		case "/declared":
			w.Header().Set("Content-Length", "4")
			_, _ = io.WriteString(w, "four")
		case "/empty204":
			w.WriteHeader(http.StatusNoContent)
		}
	})
	c := dial(t, addr)
	for _, tc := range []struct {
		path, body string
		chunked    bool
		length     int64
		status     int
	}{
		{"/short", "hello", false, 5, 200},
		{"/long", big, true, -1, 200},
		{"/declared", "four", false, 4, 200},
		{"/empty204", "", false, 0, 204},
	} {
		c.send("GET " + tc.path + " HTTP/1.1\r\nHost: a.test\r\n\r\n")
		resp, body := c.read("GET")
		if resp.StatusCode != tc.status || body != tc.body || resp.ContentLength != tc.length ||
			(len(resp.TransferEncoding) > 0) != tc.chunked || resp.Close {
			t.Errorf("%s: status %d, %d bytes, length %d, encoding %v, close %v; want %d, %d bytes, length %d, chunked %v, kept alive",
				tc.path, resp.StatusCode, len(body), resp.ContentLength, resp.TransferEncoding, resp.Close,
				tc.status, len(tc.body), tc.length, tc.chunked)
		}
		if resp.Header.Get("Date") == "" {
			t.Errorf("%s: no Date field", tc.path)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "" {
			t.Errorf("%s: Content-Type %q made up", tc.path, ct)
		}
	}
}

func TestRefusedHeads(t *testing.T) {
	addr := serve(t, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })
	for _, tc := range []struct {
		name, req string
		status    int
	}{
		{"no Host", "GET / HTTP/1.1\r\n\r\n", 400},
		{"two Hosts", "GET / HTTP/1.1\r\nHost: a.test\r\nhost: b.test\r\n\r\n", 400},
		{"bad Host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400},
		{"bad field value", "GET / HTTP/1.1\r\nHost: a.test\r\nX: a\x01b\r\n\r\n", 400},
		{"length and bad length", "POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400},
		{"unknown coding", "POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: gzip\r\n\r\n", 501},
		{"two codings", "POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n", 501},
		{"HTTP/2 in text", "GET / HTTP/2.0\r\nHost: a.test\r\n\r\n", 505},
		{"head too large", "GET / HTTP/1.1\r\nHost: a.test\r\nX: " + strings.Repeat("a", 8<<10) + "\r\n\r\n", 431},
		{"other expectation", "GET / HTTP/1.1\r\nHost: a.test\r\nExpect: magic\r\n\r\n", 417},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, addr := start(t, Options{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.WriteString(w, "ok")
			}), MaxHeaderBytes: 4 << 10})
			c := dial(t, addr)
			c.send(tc.req)
			resp, _ := c.read("GET")
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if !c.closed() {
				t.Fatal("connection left open after a refused request")
			}
		})
	}
	t.Run("HTTP/1.0 needs no Host", func(t *testing.T) {
		c := dial(t, addr)
		c.send("GET / HTTP/1.0\r\n\r\n")
		if resp, body := c.read("GET"); resp.StatusCode != 200 || body != "ok" {
			t.Fatalf("status %d, body %q", resp.StatusCode, body)
		}
		if !c.closed() {
			t.Fatal("HTTP/1.0 connection without keep-alive left open")
		}
	})
}

func TestPipelinedRequestsAnsweredInOrder(t *testing.T) {
	watchModes(t, testPipelinedRequestsAnsweredInOrder)
}

func testPipelinedRequestsAnsweredInOrder(t *testing.T, peek bool) {
	s, addr := startOn(t, listen(t, peek), Options{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(3 * watchAfter) // the watch sees the next request meanwhile
		}
		_, _ = io.WriteString(w, r.URL.Path)
	})})
	c := dial(t, addr)
	c.send("GET /slow HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\nGET /3 HTTP/1.1\r\nHost: a\r\n\r\n")
	for _, want := range []string{"/slow", "/2", "/3"} {
		if _, body := c.read("GET"); body != want {
			t.Fatalf("got %q, want %q", body, want)
		}
	}
	// A next request sent while the slow one runs, in a write of its own.
	c.send("GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
	time.Sleep(watchAfter + 5*time.Millisecond)
	c.send("POST /4 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi")
	for _, want := range []string{"/slow", "/4"} {
		if _, body := c.read("GET"); body != want {
			t.Fatalf("got %q, want %q", body, want)
		}
	}
	checkWatchMode(t, onlyConn(t, s), peek)
}

// The client leaves a request the watch waits on, with a FIN or with a
// reset (an abortive close): either way the request's context ends.
func TestClientLeavingEndsRequestContext(t *testing.T) {
	for _, reset := range []bool{false, true} {
		name := "fin"
		if reset {
			name = "reset"
		}
		t.Run(name, func(t *testing.T) {
			watchModes(t, func(t *testing.T, peek bool) { testClientLeavingEndsRequestContext(t, peek, reset) })
		})
	}
}

func testClientLeavingEndsRequestContext(t *testing.T, peek, reset bool) {
	ended := make(chan error, 1)
	s, addr := startOn(t, listen(t, peek), Options{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// As the proxy watches its client: the context's own AfterFunc.
		told := make(chan struct{})
		r.Context().(interface{ AfterFunc(func()) func() bool }).AfterFunc(func() { close(told) })
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
			ended <- fmt.Errorf("request context still live 5s after the client left")
			return
		}
		select {
		case <-told:
			ended <- nil
		case <-time.After(5 * time.Second):
			ended <- fmt.Errorf("the function registered on the context did not run")
		}
	})})
	c := dial(t, addr)
	c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	time.Sleep(2 * watchAfter)
	sc := onlyConn(t, s)
	if reset {
		_ = c.c.(*net.TCPConn).SetLinger(0) // Close sends RST
	}
	c.c.Close()
	if err := <-ended; err != nil {
		t.Fatal(err)
	}
	checkWatchMode(t, sc, peek)
}

// A watch that began during a slow request goes on waiting as the next
// request's read, under the idle timeout: a client that sends nothing
// more is closed once it runs out, as after any other request.
func TestIdleTimeoutAfterWatchedRequest(t *testing.T) {
	watchModes(t, func(t *testing.T, peek bool) {
		s, addr := startOn(t, listen(t, peek), Options{
			IdleTimeout: 200 * time.Millisecond,
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				time.Sleep(3 * watchAfter) // the watch starts meanwhile
				_, _ = io.WriteString(w, "ok")
			}),
		})
		c := dial(t, addr)
		c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		if resp, body := c.read("GET"); body != "ok" || resp.Close {
			t.Fatalf("body %q, close %v", body, resp.Close)
		}
		checkWatchMode(t, onlyConn(t, s), peek)
		start := time.Now()
		_ = c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.br.ReadByte(); err != io.EOF {
			t.Fatalf("an idle connection after a watched request: %v; want closed by the idle timeout", err)
		}
		if waited := time.Since(start); waited < 100*time.Millisecond {
			t.Fatalf("closed after %v, before the idle timeout of 200ms", waited)
		}
	})
}

func TestExpectContinue(t *testing.T) {
	addr := serve(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		_, _ = w.Write(b)
	})
	c := dial(t, addr)
	c.send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
	line, err := c.br.ReadString('\n')
	if err != nil || line != "HTTP/1.1 100 Continue\r\n" {
		t.Fatalf("first line %q (%v), want a 100 Continue", line, err)
	}
	if blank, _ := c.br.ReadString('\n'); blank != "\r\n" {
		t.Fatalf("100 Continue head ends with %q", blank)
	}
	c.send("hello")
	if resp, body := c.read("POST"); resp.StatusCode != 200 || body != "hello" {
		t.Fatalf("status %d, body %q", resp.StatusCode, body)
	}
}

func TestUnreadBody(t *testing.T) {
	addr := serve(t, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "no thanks") })
	for _, tc := range []struct {
		name string
		size int
		kept bool
	}{
		{"small body read by the server", 10 << 10, true},
		{"large body closes the connection", 2 * maxPostHandlerReadBytes, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, addr)
			go func() {
				_, _ = fmt.Fprintf(c.c, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n%s", tc.size, strings.Repeat("b", tc.size))
			}()
			resp, _ := c.read("POST")
			if resp.Close == tc.kept {
				t.Fatalf("Connection: close is %v, want %v", resp.Close, !tc.kept)
			}
			if !tc.kept {
				return
			}
			c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
			if resp, body := c.read("GET"); resp.StatusCode != 200 || body != "no thanks" {
				t.Fatalf("next request: status %d, body %q", resp.StatusCode, body)
			}
		})
	}
}

func TestHeadersTrailersAndInformational(t *testing.T) {
	addr := serve(t, func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Link", "</a.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		clear(h)
		h.Set("X-Split", "a\r\nSet-Cookie: evil=1")
		h.Set("Trailer", "X-Sum")
		_, _ = io.WriteString(w, "body")
		h.Set("X-Sum", "42")
		h.Set(http.TrailerPrefix+"X-Late", "late")
	})
	c := dial(t, addr)
	c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	resp, err := http.ReadResponse(c.br, &http.Request{Method: "GET"})
	if err != nil || resp.StatusCode != http.StatusEarlyHints || resp.Header.Get("Link") == "" {
		t.Fatalf("first response: %v, %v; want a 103 with Link", resp, err)
	}
	resp, body := c.read("GET")
	if resp.StatusCode != 200 || body != "body" {
		t.Fatalf("final response: status %d, body %q", resp.StatusCode, body)
	}
	if resp.Header.Get("Set-Cookie") != "" || resp.Header.Get("X-Split") != "a  Set-Cookie: evil=1" {
		t.Errorf("a line break in a value split the field: %q", resp.Header)
	}
	if resp.Header.Get("Link") != "" {
		t.Errorf("the 103's fields stayed on the final head: %q", resp.Header)
	}
	if resp.Trailer.Get("X-Sum") != "42" || resp.Trailer.Get("X-Late") != "late" {
		t.Errorf("trailers %q, want X-Sum: 42 and X-Late: late", resp.Trailer)
	}
}

// TestAdoptHeader: a handler that has not touched the header hands over a
// map of its own, which goes out as the head and stays the header after;
// one that has, or has written its head, keeps what it has.
func TestAdoptHeader(t *testing.T) {
	type adopter interface{ AdoptHeader(http.Header) bool }
	addr := serve(t, func(w http.ResponseWriter, r *http.Request) {
		a := w.(adopter)
		switch r.URL.Path {
		case "/fresh":
			h := http.Header{"X-Backend": {"b1"}, "Trailer": {"X-Sum"}}
			if !a.AdoptHeader(h) {
				t.Error("AdoptHeader on a fresh response returned false")
			}
			if w.Header()["X-Backend"] == nil {
				t.Error("Header after AdoptHeader is not the adopted map")
			}
			_, _ = io.WriteString(w, "body")
			h.Set("X-Sum", "7") // the adopted map carries the trailers too
		case "/touched":
			w.Header().Set("X-Own", "1")
			if a.AdoptHeader(http.Header{"X-Backend": {"b1"}}) {
				t.Error("AdoptHeader after Header returned true")
			}
			w.WriteHeader(http.StatusAccepted)
		case "/written":
			w.WriteHeader(http.StatusAccepted)
			if a.AdoptHeader(http.Header{"X-Backend": {"b1"}}) {
				t.Error("AdoptHeader after WriteHeader returned true")
			}
		}
	})
	c := dial(t, addr)
	c.send("GET /fresh HTTP/1.1\r\nHost: a\r\n\r\n")
	resp, body := c.read("GET")
	if resp.Header.Get("X-Backend") != "b1" || body != "body" || resp.Trailer.Get("X-Sum") != "7" {
		t.Errorf("fresh: header %q, body %q, trailer %q; want X-Backend: b1, body, X-Sum: 7", resp.Header, body, resp.Trailer)
	}
	for _, path := range []string{"/touched", "/written"} {
		c.send("GET " + path + " HTTP/1.1\r\nHost: a\r\n\r\n")
		resp, _ := c.read("GET")
		if resp.StatusCode != http.StatusAccepted || resp.Header.Get("X-Backend") != "" {
			t.Errorf("%s: status %d, header %q; want 202 without X-Backend", path, resp.StatusCode, resp.Header)
		}
		if path == "/touched" && resp.Header.Get("X-Own") != "1" {
			t.Errorf("%s: header %q lost the handler's own X-Own", path, resp.Header)
		}
	}
}

func TestHEADKeepsLength(t *testing.T) {
	addr := serve(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "11")
		_, _ = io.WriteString(w, "hello world")
	})
	c := dial(t, addr)
	c.send("HEAD / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")
	if resp, body := c.read("HEAD"); resp.ContentLength != 11 || body != "" {
		t.Fatalf("HEAD: length %d, body %q", resp.ContentLength, body)
	}
	if _, body := c.read("GET"); body != "hello world" {
		t.Fatalf("GET after HEAD: body %q (the HEAD leaked a body?)", body)
	}
}

func TestAbortedResponseIsNotPassedOffAsWhole(t *testing.T) {
	addr := serve(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, strings.Repeat("x", 3*bufferBeforeChunking))
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	})
	c := dial(t, addr)
	c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	resp, err := http.ReadResponse(c.br, &http.Request{Method: "GET"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Fatal("a body broken by the handler read as complete")
	}
}

func TestHijackKeepsBytesSentEarly(t *testing.T) {
	watchModes(t, testHijackKeepsBytesSentEarly)
}

func testHijackKeepsBytesSentEarly(t *testing.T, peek bool) {
	s, addr := startOn(t, listen(t, peek), Options{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(2 * watchAfter) // the watch has seen the early bytes
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		_ = brw.Flush()
		line, _ := brw.ReadString('\n')
		_, _ = brw.WriteString("echo:" + line)
		_ = brw.Flush()
	})})
	c := dial(t, addr)
	c.send("GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	time.Sleep(watchAfter + 5*time.Millisecond)
	checkWatchMode(t, onlyConn(t, s), peek)
	c.send("early\n")
	if resp, _ := c.read("GET"); resp.StatusCode != 101 {
		t.Fatalf("status %d, want 101", resp.StatusCode)
	}
	if line, err := c.br.ReadString('\n'); line != "echo:early\n" {
		t.Fatalf("after the switch: %q (%v), want the early bytes echoed", line, err)
	}
}

func TestTimeouts(t *testing.T) {
	_, addr := start(t, Options{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}),
		ReadHeaderTimeout: 100 * time.Millisecond,
		IdleTimeout:       200 * time.Millisecond,
	})
	t.Run("slow head", func(t *testing.T) {
		c := dial(t, addr)
		c.send("GET / HTTP/1.1\r\n")
		if !c.closed() {
			t.Fatal("a head that never ends kept its connection")
		}
	})
	t.Run("idle", func(t *testing.T) {
		c := dial(t, addr)
		c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		c.read("GET")
		if !c.closed() {
			t.Fatal("an idle connection outlived its timeout")
		}
	})
}

// TestTimeoutsAroundWholeHeads covers the deadlines a head read whole in
// one go leaves alone (no read is left for them to bound): a slow handler
// is not cut by them, and a next head that is not whole still gets the
// head's timeout, not the far longer idle one.
func TestTimeoutsAroundWholeHeads(t *testing.T) {
	_, addr := start(t, Options{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/slow" {
				time.Sleep(300 * time.Millisecond)
			}
			fmt.Fprintf(w, "context error: %v", r.Context().Err())
		}),
		ReadHeaderTimeout: 100 * time.Millisecond,
		ReadTimeout:       100 * time.Millisecond,
		IdleTimeout:       time.Minute,
	})
	t.Run("slow handler", func(t *testing.T) {
		c := dial(t, addr)
		for i := range 2 {
			c.send("GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
			if resp, body := c.read("GET"); resp.StatusCode != 200 || body != "context error: <nil>" {
				t.Fatalf("request %d: %d %q", i+1, resp.StatusCode, body)
			}
		}
	})
	t.Run("slow second head", func(t *testing.T) {
		c := dial(t, addr)
		c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\n")
		if resp, _ := c.read("GET"); resp.StatusCode != 200 {
			t.Fatalf("first request: %d", resp.StatusCode)
		}
		if !c.closed() {
			t.Fatal("a head that never ends kept its connection for the idle timeout")
		}
	})
}

func TestH2CHandedOver(t *testing.T) {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, r.Proto) })
	_, addr := start(t, Options{Handler: h, H2C: &http.Server{Handler: h, Protocols: &p}})
	tr := &http.Transport{Protocols: &p} // h2c with prior knowledge only
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if b, _ := io.ReadAll(resp.Body); string(b) != "HTTP/2.0" {
		t.Fatalf("h2c request served as %q", b)
	}
	c := dial(t, addr)
	c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	if _, body := c.read("GET"); body != "HTTP/1.1" {
		t.Fatalf("HTTP/1.1 beside h2c served as %q", body)
	}
}

func TestShutdownAnswersWhatItRead(t *testing.T) {
	release := make(chan struct{})
	inside := make(chan struct{}, 1)
	s, addr := start(t, Options{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			inside <- struct{}{}
			<-release
		}
		_, _ = io.WriteString(w, r.URL.Path)
	}), IdleTimeout: 500 * time.Millisecond})
	idle := dial(t, addr)
	idle.send("GET /first HTTP/1.1\r\nHost: a\r\n\r\n")
	idle.read("GET")
	quiet := dial(t, addr) // idle too, and sends nothing more
	quiet.send("GET /first HTTP/1.1\r\nHost: a\r\n\r\n")
	quiet.read("GET")
	busy := dial(t, addr)
	busy.send("GET /hold HTTP/1.1\r\nHost: a\r\n\r\n")
	<-inside
	fresh := dial(t, addr) // accepted, nothing sent yet
	testwait.Until(t, 5*time.Second, "the server to accept four connections", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.conns) == 4
	})

	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- s.Shutdown(context.Background()) }()
	// Sent once the drain has begun: a request read before it is answered
	// as any other, without Connection: close.
	testwait.Until(t, 5*time.Second, "the drain to begin", s.draining.Load)
	// An idle connection is not closed under its client, who may be
	// sending on it: its next request is answered, with Connection: close.
	idle.send("GET /again HTTP/1.1\r\nHost: a\r\n\r\n")
	if resp, body := idle.read("GET"); body != "/again" || !resp.Close {
		t.Fatalf("the next request on an idle connection while draining: body %q, close %v; want answered with Connection: close", body, resp.Close)
	}
	if !idle.closed() {
		t.Fatal("the idle connection stayed open after its answer with Connection: close")
	}
	fresh.send("GET /late HTTP/1.1\r\nHost: a\r\n\r\n")
	if resp, body := fresh.read("GET"); body != "/late" || !resp.Close {
		t.Fatalf("a request read while draining: body %q, close %v; want answered with Connection: close", body, resp.Close)
	}
	close(release)
	if resp, body := busy.read("GET"); body != "/hold" || !resp.Close {
		t.Fatalf("the request in flight: body %q, close %v", body, resp.Close)
	}
	// One that sends nothing closes at its idle timeout.
	if !quiet.closed() {
		t.Fatal("a quiet idle connection outlived its idle timeout")
	}
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if took := time.Since(start); took < 200*time.Millisecond {
		t.Errorf("Shutdown returned after %v, before the quiet connection's idle timeout", took)
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Fatal("still accepting after Shutdown")
	}
}

// lateListener hands over one connection only once it is closed: an
// Accept that won its race with Shutdown.
type lateListener struct {
	net.Listener
	late   net.Conn
	closed chan struct{}
	once   sync.Once
}

func (l *lateListener) Accept() (net.Conn, error) {
	<-l.closed
	if c := l.late; c != nil {
		l.late = nil
		return c, nil
	}
	return nil, net.ErrClosed
}

func (l *lateListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

// A connection accepted just as draining begins is answered, not closed
// unread: on a socket shared with the next generation, closing it would
// reset a client that did nothing wrong.
func TestShutdownServesConnectionAcceptedLate(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cli := dial(t, ln.Addr().String())
	srvSide, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	cli.send("GET /late HTTP/1.1\r\nHost: a\r\n\r\n")
	s := New(Options{Logger: slog.New(slog.DiscardHandler), Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.URL.Path)
	})})
	late := &lateListener{Listener: ln, late: srvSide, closed: make(chan struct{})}
	served := make(chan error, 1)
	go func() { served <- s.Serve(late) }()
	testwait.Until(t, 5*time.Second, "Serve to start accepting", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.lns) == 1
	})
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if resp, body := cli.read("GET"); body != "/late" || !resp.Close {
		t.Fatalf("a connection accepted as draining began: body %q, close %v; want answered with Connection: close", body, resp.Close)
	}
}

// A handler may leave a goroutine reading the body after it returns, as a
// proxy copying the body upstream does when the backend answers early.
// The connection must not hand its buffer to the next connection while
// that read runs (the race detector sees it if it does).
func TestBodyReaderOutlivingHandler(t *testing.T) {
	leftover := make(chan error, 1)
	addr := serve(t, func(w http.ResponseWriter, r *http.Request) {
		first := make([]byte, 10)
		if _, err := io.ReadFull(r.Body, first); err != nil {
			t.Errorf("reading the body's first bytes: %v", err)
		}
		go func() {
			_, err := io.Copy(io.Discard, r.Body) // waits for bytes that never come
			leftover <- err
		}()
		w.Header().Set("Content-Length", "2")
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		_, _ = io.WriteString(w, "no")
	})
	c := dial(t, addr)
	c.send("POST / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: 100000\r\n\r\n" + strings.Repeat("x", 10))
	if resp, body := c.read("POST"); resp.StatusCode != http.StatusRequestEntityTooLarge || body != "no" {
		t.Fatalf("status %d, body %q", resp.StatusCode, body)
	}
	c.c.Close() // the server's wait for the client to finish ends at once
	if err := <-leftover; err == nil {
		t.Fatal("the body read to its end, but most of it was never sent")
	}
	// The next connection takes the pooled buffers.
	next := dial(t, addr)
	next.send("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789")
	if resp, _ := next.read("GET"); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("next connection: status %d", resp.StatusCode)
	}
}

// A handler that refuses a large body without reading it is answered at
// once: the server does not first wait for the rest of a body it would
// not keep the connection for (net/http's rule).
func TestLargeUnreadBodyAnsweredAtOnce(t *testing.T) {
	addr := serve(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "2")
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		_, _ = io.WriteString(w, "no")
	})
	c := dial(t, addr)
	// Less than maxPostHandlerReadBytes is sent, and no more will be: an
	// answer that waited for it would never come.
	c.send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10000000\r\n\r\n" + strings.Repeat("x", 1000))
	resp, body := c.read("POST")
	if resp.StatusCode != http.StatusRequestEntityTooLarge || body != "no" || !resp.Close {
		t.Fatalf("status %d, body %q, close %v; want 413 \"no\" with Connection: close", resp.StatusCode, body, resp.Close)
	}
}

// An HTTP/1.0 client that asks for keep-alive keeps its connection when
// the response's length is known, as it is for a short body held whole.
func TestHTTP10KeepAlive(t *testing.T) {
	addr := serve(t, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "hello") })
	c := dial(t, addr)
	for i := range 2 {
		c.send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
		resp, body := c.read("GET")
		if body != "hello" || resp.ContentLength != 5 || resp.Header.Get("Connection") != "keep-alive" {
			t.Fatalf("request %d: body %q, length %d, Connection %q; want length 5, keep-alive",
				i, body, resp.ContentLength, resp.Header.Get("Connection"))
		}
	}
	c.send("GET / HTTP/1.0\r\n\r\n")
	if _, body := c.read("GET"); body != "hello" || !c.closed() {
		t.Fatalf("without keep-alive: body %q, or the connection stayed open", body)
	}
}

// A request pipelined behind one whose head promised keep-alive before
// draining began is answered too: the client sent it before it could know.
func TestShutdownAnswersPipelinedRequest(t *testing.T) {
	var s *Server
	s, addr := start(t, Options{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.URL.Path)
		if r.URL.Path == "/first" {
			w.(http.Flusher).Flush() // its head promises keep-alive
			go func() { _ = s.Shutdown(context.Background()) }()
			testwait.Until(t, 5*time.Second, "draining to begin", s.draining.Load)
		}
	})})
	c := dial(t, addr)
	c.send("GET /first HTTP/1.1\r\nHost: a\r\n\r\nGET /second HTTP/1.1\r\nHost: a\r\n\r\n")
	if resp, body := c.read("GET"); body != "/first" || resp.Close {
		t.Fatalf("first: body %q, close %v; want kept alive", body, resp.Close)
	}
	if resp, body := c.read("GET"); body != "/second" || !resp.Close {
		t.Fatalf("second: body %q, close %v; want answered with Connection: close", body, resp.Close)
	}
}

// A next request the watch saw while the handler ran, in a write of its
// own after the first, is answered although draining began before the
// first's response ended: it was sent before the client could know. With the
// peek its bytes are still on the socket when the connection decides.
func TestShutdownAnswersRequestTheWatchSaw(t *testing.T) {
	watchModes(t, func(t *testing.T, peek bool) {
		var s *Server
		seen := make(chan struct{})
		s, addr := startOn(t, listen(t, peek), Options{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, r.URL.Path)
			if r.URL.Path == "/first" {
				<-seen
				w.(http.Flusher).Flush() // its head promises keep-alive
				go func() { _ = s.Shutdown(context.Background()) }()
				testwait.Until(t, 5*time.Second, "draining to begin", s.draining.Load)
			}
		})})
		c := dial(t, addr)
		c.send("GET /first HTTP/1.1\r\nHost: a\r\n\r\n")
		sc := onlyConn(t, s)
		testwait.Until(t, 5*time.Second, "the watch to wait", func() bool {
			sc.r.mu.Lock()
			defer sc.r.mu.Unlock()
			return sc.r.watch == watchReading
		})
		c.send("GET /second HTTP/1.1\r\nHost: a\r\n\r\n")
		testwait.Until(t, 5*time.Second, "the watch to see the next request", func() bool { return watchDone(sc) })
		if !sc.r.holds() {
			t.Fatal("the watch saw a next request but the connection does not know")
		}
		close(seen)
		if _, body := c.read("GET"); body != "/first" {
			t.Fatalf("first: body %q", body)
		}
		if resp, body := c.read("GET"); body != "/second" || !resp.Close {
			t.Fatalf("second: body %q, close %v; want answered with Connection: close", body, resp.Close)
		}
		checkWatchMode(t, sc, peek)
	})
}

// The CRLF an old client sends after a POST body does not count as a next
// request: the connection is idle, so it closes at its idle timeout, and a
// drain waits no longer (a request begun would keep it open).
func TestCRLFAfterPOSTLeavesConnectionIdle(t *testing.T) {
	s, addr := start(t, Options{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}), IdleTimeout: 300 * time.Millisecond})
	c := dial(t, addr)
	c.send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi\r\n\r\n")
	if _, body := c.read("POST"); body != "ok" {
		t.Fatalf("body %q", body)
	}
	// Shutdown waits for a request begun (no read deadline bounds its
	// head here); an idle connection closes at its idle timeout.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v; the connection was not taken for idle", err)
	}
	if !c.closed() {
		t.Fatal("the idle connection outlived the shutdown")
	}
}

// A handler that closes a short body unread keeps the connection, as with
// net/http: Close reads the rest. A long declared rest is not read; the
// connection closes after the answer, which goes out at once.
func TestClosedBody(t *testing.T) {
	addr := serve(t, func(w http.ResponseWriter, r *http.Request) {
		_ = r.Body.Close()
		if _, err := r.Body.Read(make([]byte, 1)); err != http.ErrBodyReadAfterClose {
			t.Errorf("read after Close: %v", err)
		}
		_, _ = io.WriteString(w, "ok")
		w.(http.Flusher).Flush() // the head goes out before the handler returns
	})
	c := dial(t, addr)
	for range 2 {
		c.send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello")
		if resp, body := c.read("POST"); body != "ok" || resp.Close {
			t.Fatalf("short body closed unread: body %q, close %v; want kept alive", body, resp.Close)
		}
	}
	c.send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10000000\r\n\r\nhello")
	if resp, body := c.read("POST"); body != "ok" || !resp.Close {
		t.Fatalf("long body closed unread: body %q, close %v; want Connection: close", body, resp.Close)
	}
}

// onlyConn returns the server's one connection.
func onlyConn(t *testing.T, s *Server) *conn {
	t.Helper()
	var c *conn
	testwait.Until(t, 5*time.Second, "the server to hold one connection", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		for k := range s.conns {
			c = k
		}
		return len(s.conns) == 1
	})
	return c
}

// watchDone reports whether the watch has stopped waiting.
func watchDone(c *conn) bool {
	c.r.mu.Lock()
	defer c.r.mu.Unlock()
	return c.r.watch != watchReading
}

// The CRLF after a POST body can reach the watch instead of the buffer:
// seen while the handler still runs, or by a wait that began during the
// handler and ends after the response. Either way it is no next request:
// the connection is idle, and draining closes it at once.
func TestCRLFAfterPOSTReadByTheWatch(t *testing.T) {
	watchModes(t, testCRLFAfterPOSTReadByTheWatch)
}

func testCRLFAfterPOSTReadByTheWatch(t *testing.T, peek bool) {
	for _, tc := range []struct {
		name       string
		duringBody bool // the CRLF arrives before the response, else after it
	}{
		{"while the handler runs", true},
		{"after the response", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bodyRead, proceed := make(chan struct{}), make(chan struct{})
			s, addr := startOn(t, listen(t, peek), Options{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.ReadAll(r.Body) // the end of the body arms the watch
				close(bodyRead)
				<-proceed
				_, _ = io.WriteString(w, "ok")
			}), IdleTimeout: 300 * time.Millisecond})
			cli := dial(t, addr)
			cli.send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi")
			<-bodyRead
			c := onlyConn(t, s)
			testwait.Until(t, 5*time.Second, "the watch to read", func() bool {
				c.r.mu.Lock()
				defer c.r.mu.Unlock()
				return c.r.watch == watchReading
			})
			if tc.duringBody {
				cli.send("\r\n")
				testwait.Until(t, 5*time.Second, "the watch to see the CRLF", func() bool { return watchDone(c) })
				if c.r.holds() {
					t.Fatal("the CRLF after a POST taken for a next request")
				}
			}
			close(proceed)
			if _, body := cli.read("POST"); body != "ok" {
				t.Fatalf("body %q", body)
			}
			if !tc.duringBody {
				// The watch's read, begun during the handler, is the one
				// that gets it.
				cli.send("\r\n")
				testwait.Until(t, 5*time.Second, "the watch to see the CRLF", func() bool { return watchDone(c) })
			}
			checkWatchMode(t, c, peek)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := s.Shutdown(ctx); err != nil {
				t.Fatalf("Shutdown: %v; the connection was not taken for idle (state %d)", err, c.state.Load())
			}
			// Closed by a FIN: the CRLF was taken off the socket, so the
			// close does not find it unread and reset the connection.
			_ = cli.c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := cli.br.ReadByte(); err != io.EOF {
				t.Fatalf("the idle connection after the shutdown: %v; want closed with a FIN (io.EOF)", err)
			}
		})
	}
}

// A request that closes its connection after it, or one over HTTP/1.0
// without keep-alive, has no rest of body worth reading: Close does not
// wait for it, as net/http's does not. The client here waits for the
// answer before it sends the rest.
func TestCloseDoesNotWaitForBodyOfClosingRequest(t *testing.T) {
	addr := serve(t, func(w http.ResponseWriter, r *http.Request) {
		_ = r.Body.Close()
		_, _ = io.WriteString(w, "ok")
	})
	for _, req := range []string{
		"POST / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: 10\r\n\r\nhello",
		"POST / HTTP/1.0\r\nHost: a\r\nContent-Length: 10\r\n\r\nhello",
	} {
		c := dial(t, addr)
		c.send(req)
		if resp, body := c.read("POST"); body != "ok" || !resp.Close {
			t.Fatalf("%q: body %q, close %v; want \"ok\" and the connection closed", req[:16], body, resp.Close)
		}
	}
}
