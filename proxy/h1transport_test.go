package proxy

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// scriptedBackend reads requests on every connection and answers each with
// what answer returns, byte for byte; close ends the connection after the
// answer. It counts connections and records request bodies.
type scriptedBackend struct {
	addr   string
	conns  atomic.Int32
	mu     sync.Mutex
	bodies []string
	closed chan struct{} // one value per connection the backend closed
}

func startScripted(t *testing.T, answer func(r *http.Request, body string) (raw string, close bool)) *scriptedBackend {
	t.Helper()
	b := &scriptedBackend{closed: make(chan struct{}, 100)}
	b.addr = serveRaw(t, "127.0.1.1", func(c net.Conn) {
		b.conns.Add(1)
		defer func() { b.closed <- struct{}{} }()
		defer c.Close()
		br := bufio.NewReader(c)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			body, _ := io.ReadAll(req.Body)
			b.mu.Lock()
			b.bodies = append(b.bodies, string(body))
			b.mu.Unlock()
			raw, closeAfter := answer(req, string(body))
			if _, err := io.WriteString(c, raw); err != nil || closeAfter {
				return
			}
		}
	})
	return b
}

// roundTrip sends one request through tr and reads the whole response.
func roundTrip(t *testing.T, tr Transport, method, addr, body string, hdr http.Header) (*http.Response, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, "http://"+addr+"/x", rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s: reading the body: %v", method, err)
	}
	_ = resp.Body.Close()
	return resp, string(got)
}

// Each framing net/http knows reaches the caller whole, and the
// connection is reused exactly when the response ended cleanly and
// nobody asked to close.
func TestH1TransportFramingAndReuse(t *testing.T) {
	for _, tc := range []struct {
		name     string
		method   string
		raw      string
		close    bool // the backend closes after answering
		body     string
		trailer  string // X-Sum after the body
		reused   bool
		wantCode int
	}{
		{name: "content-length", raw: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", body: "hello", reused: true},
		{name: "chunked with a trailer", raw: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n3\r\nhel\r\n2\r\nlo\r\n0\r\nX-Sum: 42\r\n\r\n", body: "hello", trailer: "42", reused: true},
		{name: "HEAD with a length, no body follows", method: "HEAD", raw: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", reused: true},
		{name: "204", raw: "HTTP/1.1 204 No Content\r\n\r\n", reused: true, wantCode: 204},
		{name: "304 with a length", raw: "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\nETag: \"x\"\r\n\r\n", reused: true, wantCode: 304},
		{name: "empty body", raw: "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", reused: true},
		{name: "delimited by the close", raw: "HTTP/1.1 200 OK\r\n\r\nhello", close: true, body: "hello"},
		{name: "connection: close", raw: "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", close: true, body: "ok"},
		{name: "HTTP/1.0 without keep-alive", raw: "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", body: "ok"},
		{name: "bytes after the response", raw: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokGARBAGE", body: "ok"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := startScripted(t, func(*http.Request, string) (string, bool) { return tc.raw, tc.close })
			tr := NewTransport(TransportOptions{Connect: time.Second})
			defer tr.CloseIdleConnections()
			method := tc.method
			if method == "" {
				method = "GET"
			}
			want := tc.wantCode
			if want == 0 {
				want = 200
			}
			for i := range 2 {
				resp, body := roundTrip(t, tr, method, b.addr, "", nil)
				if resp.StatusCode != want || body != tc.body {
					t.Fatalf("request %d: %d %q, want %d %q", i, resp.StatusCode, body, want, tc.body)
				}
				if got := resp.Trailer.Get("X-Sum"); got != tc.trailer {
					t.Errorf("request %d: trailer X-Sum %q, want %q", i, got, tc.trailer)
				}
			}
			wantConns := int32(2)
			if tc.reused {
				wantConns = 1
			}
			if n := b.conns.Load(); n != wantConns {
				t.Errorf("two requests took %d connections, want %d", n, wantConns)
			}
		})
	}
}

// A body closed before its end closes the connection: the rest is never
// read as the next response.
func TestH1TransportBodyClosedEarly(t *testing.T) {
	big := strings.Repeat("b", 256<<10)
	b := startScripted(t, func(*http.Request, string) (string, bool) {
		return "HTTP/1.1 200 OK\r\nContent-Length: 262144\r\n\r\n" + big, false
	})
	tr := NewTransport(TransportOptions{Connect: time.Second})
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest("GET", "http://"+b.addr+"/", nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if _, body := roundTrip(t, tr, "GET", b.addr, "", nil); body != big {
		t.Fatalf("second response: %d bytes, want %d", len(body), len(big))
	}
	if n := b.conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2 (the half-read one closed)", n)
	}
}

// A kept-alive connection the backend closed while it was idle (its own
// keep-alive timeout) is not used again: a POST after it, which could not
// be sent twice, gets through on a new connection.
func TestH1TransportIdleConnectionClosedByBackend(t *testing.T) {
	b := startScripted(t, func(_ *http.Request, body string) (string, bool) {
		return "HTTP/1.1 200 OK\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body, true
	})
	tr := NewTransport(TransportOptions{Connect: time.Second})
	defer tr.CloseIdleConnections()
	for i := range 3 {
		if _, body := roundTrip(t, tr, "POST", b.addr, "payload", nil); body != "payload" {
			t.Fatalf("request %d: body %q", i, body)
		}
		select {
		case <-b.closed: // the backend has closed; the FIN is on its way
		case <-time.After(5 * time.Second):
			t.Fatal("backend did not close")
		}
	}
	if n := b.conns.Load(); n != 3 {
		t.Errorf("%d connections, want 3", n)
	}
}

// Expect: 100-continue: the body waits for the backend's 100 (which goes
// to the 1xx hook), and is never sent when the backend answers first.
func TestH1TransportExpectContinue(t *testing.T) {
	for _, tc := range []struct {
		name      string
		interim   bool // the backend sends 100 Continue and reads the body
		wantCode  int
		want1xx   int
		wantBody  string // what the backend received
		wantConns int32  // after a second plain request
	}{
		{name: "backend sends 100, then reads", interim: true, wantCode: 200, want1xx: 1, wantBody: "payload", wantConns: 1},
		{name: "backend refuses at once", wantCode: 417, wantConns: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			var mu sync.Mutex
			var conns atomic.Int32
			addr := serveRaw(t, "127.0.1.1", func(c net.Conn) {
				conns.Add(1)
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					if req.Header.Get("Expect") == "" {
						_, _ = io.Copy(io.Discard, req.Body)
						_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
						continue
					}
					if !tc.interim {
						// Answer without reading: the proxy must close.
						_, _ = io.WriteString(c, "HTTP/1.1 417 Expectation Failed\r\nContent-Length: 0\r\n\r\n")
						continue
					}
					_, _ = io.WriteString(c, "HTTP/1.1 100 Continue\r\n\r\n")
					body, _ := io.ReadAll(req.Body)
					mu.Lock()
					got = append(got, string(body))
					mu.Unlock()
					_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
				}
			})
			tr := NewTransport(TransportOptions{Connect: time.Second})
			defer tr.CloseIdleConnections()
			var n1xx atomic.Int32
			ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
				Got1xxResponse: func(int, textproto.MIMEHeader) error { n1xx.Add(1); return nil },
			})
			// A body the transport cannot see is in memory, so nothing
			// makes it send the body before the head.
			req, _ := http.NewRequestWithContext(ctx, "PUT", "http://"+addr+"/", io.MultiReader(strings.NewReader("payload")))
			req.ContentLength = 7
			req.Header.Set("Expect", "100-continue")
			start := time.Now()
			resp, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode != tc.wantCode || int(n1xx.Load()) != tc.want1xx {
				t.Fatalf("%d after %d 1xx, want %d after %d", resp.StatusCode, n1xx.Load(), tc.wantCode, tc.want1xx)
			}
			if d := time.Since(start); d >= expectContinueTimeout {
				t.Errorf("took %v: the body waited out the timeout", d)
			}
			roundTrip(t, tr, "GET", addr, "", nil)
			mu.Lock()
			defer mu.Unlock()
			if tc.wantBody != "" && (len(got) != 1 || got[0] != tc.wantBody) {
				t.Errorf("backend read %q, want %q", got, tc.wantBody)
			}
			if n := conns.Load(); n != tc.wantConns {
				t.Errorf("%d connections, want %d", n, tc.wantConns)
			}
		})
	}
}

// postOpenBody sends a POST whose body has begun and not ended, and returns
// the response with the body's writer; closing it ends the body.
func postOpenBody(t *testing.T, tr http.RoundTripper, addr string) (*http.Response, *io.PipeWriter) {
	t.Helper()
	pr, pw := io.Pipe()
	go func() { _, _ = pw.Write([]byte("first part")) }()
	req, _ := http.NewRequest("POST", "http://"+addr+"/", pr)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		_ = pw.Close()
		t.Fatal(err)
	}
	return resp, pw
}

// A backend that answers before it read a streaming request body gets its
// answer to the caller at once; the rest of the body is not waited for,
// and nothing keeps running once the body ends.
func TestH1TransportAnswerBeforeBody(t *testing.T) {
	baseline := runtime.NumGoroutine()
	addr := serveRaw(t, "127.0.1.1", func(c net.Conn) {
		if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
			return
		}
		_, _ = io.WriteString(c, "HTTP/1.1 413 Content Too Large\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
	})
	tr := NewTransport(TransportOptions{Connect: time.Second})
	resp, pw := postOpenBody(t, tr, addr)
	_ = resp.Body.Close()
	if resp.StatusCode != 413 {
		t.Fatalf("status %d, want 413", resp.StatusCode)
	}
	_ = pw.Close()
	tr.CloseIdleConnections()
	checkNoLeak(t, baseline+2) // serveRaw's accept loop and the test's
}

// A backend that answers, keeping the connection alive, before the
// request body has been sent: the answer reaches the caller while the
// body is still being written, and the connection, whose request never
// went out whole, is closed rather than reused. Nothing keeps running once
// the body ends.
func TestH1TransportAnswerBeforeBodyKeepAlive(t *testing.T) {
	baseline := runtime.NumGoroutine()
	var conns atomic.Int32
	closed := make(chan struct{}, 2)
	addr := serveRaw(t, "127.0.1.1", func(c net.Conn) {
		conns.Add(1)
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		if req.Method == "POST" {
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			_, _ = io.Copy(io.Discard, br) // until the proxy closes
			closed <- struct{}{}
			return
		}
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	})
	tr := NewTransport(TransportOptions{Connect: time.Second})
	resp, pw := postOpenBody(t, tr, addr)
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil || string(body) != "ok" {
		t.Fatalf("body %q, %v; want ok with the request body still open", body, err)
	}
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("the connection with a half-sent request was not closed")
	}
	roundTrip(t, tr, "GET", addr, "", nil)
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2: the first may not be reused", n)
	}
	_ = pw.Close()
	tr.CloseIdleConnections()
	checkNoLeak(t, baseline+2) // serveRaw's accept loop and the test's
}

// Without a 1xx hook, a backend sending 1xx without end fails the attempt
// after a few.
func TestH1TransportInformationalWithoutHook(t *testing.T) {
	b := startScripted(t, func(*http.Request, string) (string, bool) {
		return strings.Repeat("HTTP/1.1 103 Early Hints\r\n\r\n", 50) + "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false
	})
	tr := NewTransport(TransportOptions{Connect: time.Second})
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest("GET", "http://"+b.addr+"/", nil)
	if resp, err := tr.RoundTrip(req); err == nil {
		_ = resp.Body.Close()
		t.Fatalf("got %d, want an error", resp.StatusCode)
	}
}
