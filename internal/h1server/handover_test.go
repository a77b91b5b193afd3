package h1server

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/internal/testwait"
)

// A server handing over to its successor keeps every HTTP/1.1 connection
// open: an idle one moves at once, a busy one after its answer (which
// keeps the connection alive), one with the start of a next request
// already read moves with those bytes; each next request is answered by
// the successor, on the same connection, plain or TLS.
func TestHandOverKeepsConnections(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		name := "plain"
		if useTLS {
			name = "tls"
		}
		t.Run(name, func(t *testing.T) {
			var cfg *tls.Config
			if useTLS {
				cfg = testTLSConfig(t)
			}
			release := make(chan struct{})
			inside := make(chan struct{}, 1)
			handler := func(who string) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if r.URL.Path == "/hold" {
						inside <- struct{}{}
						<-release
					}
					_, _ = io.WriteString(w, who+" "+r.URL.Path)
				})
			}
			old, addr := start(t, Options{Handler: handler("old"), TLSConfig: cfg, IdleTimeout: time.Minute})
			next, _ := start(t, Options{Handler: handler("new"), TLSConfig: cfg, IdleTimeout: time.Minute})

			idle := dialMaybeTLS(t, addr, cfg)
			idle.send("GET /1 HTTP/1.1\r\nHost: a\r\n\r\n")
			if _, body := idle.read("GET"); body != "old /1" {
				t.Fatalf("idle's first answer %q", body)
			}
			busy := dialMaybeTLS(t, addr, cfg)
			busy.send("GET /hold HTTP/1.1\r\nHost: a\r\n\r\n")
			<-inside
			testwait.Until(t, 5*time.Second, "the old server to hold both connections", func() bool {
				old.mu.Lock()
				defer old.mu.Unlock()
				return len(old.conns) == 2
			})

			done := make(chan error, 1)
			go func() { done <- old.HandOver(context.Background(), next) }()
			testwait.Until(t, 5*time.Second, "the idle connection to move", func() bool {
				next.mu.Lock()
				defer next.mu.Unlock()
				return len(next.conns) == 1
			})
			idle.send("GET /2 HTTP/1.1\r\nHost: a\r\n\r\n")
			if resp, body := idle.read("GET"); body != "new /2" || resp.Close {
				t.Fatalf("idle's next answer %q (close %v), want the successor's, kept alive", body, resp.Close)
			}
			// The busy one's answer comes from the old server, kept alive,
			// and a request already sent behind it goes to the new one.
			busy.send("GET /3 HTTP/1.1\r\nHost: a\r\n\r\n")
			close(release)
			if resp, body := busy.read("GET"); body != "old /hold" || resp.Close {
				t.Fatalf("busy's answer %q (close %v), want the old server's, kept alive", body, resp.Close)
			}
			if _, body := busy.read("GET"); body != "new /3" {
				t.Fatalf("the request behind it: %q, want the successor's", body)
			}
			if err := <-done; err != nil {
				t.Fatalf("HandOver: %v", err)
			}
			old.mu.Lock()
			left := len(old.conns)
			old.mu.Unlock()
			if left != 0 {
				t.Errorf("%d connections left on the old server", left)
			}
			for _, c := range []*client{idle, busy} {
				c.send("GET /4 HTTP/1.1\r\nHost: a\r\n\r\n")
				if _, body := c.read("GET"); body != "new /4" {
					t.Errorf("a later request: %q, want the successor's", body)
				}
			}
		})
	}
}

// A connection handed to a server that is handing over in turn goes on to
// that one's successor.
func TestHandOverChains(t *testing.T) {
	h := func(who string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, who) })
	}
	a, addr := start(t, Options{Handler: h("a"), IdleTimeout: time.Minute})
	b, _ := start(t, Options{Handler: h("b"), IdleTimeout: time.Minute})
	c, _ := start(t, Options{Handler: h("c"), IdleTimeout: time.Minute})
	cl := dial(t, addr)
	cl.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	cl.read("GET")
	if err := b.HandOver(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	if err := a.HandOver(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	cl.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	if _, body := cl.read("GET"); body != "c" {
		t.Fatalf("answered by %q, want c", body)
	}
}

// A connection handed to a server that drains (the process is stopping)
// is kept as one of its own idle connections: its next request is
// answered, with Connection: close, rather than the connection closed
// under a client that may be sending it. One handed to a server done with
// its connections is closed.
func TestHandOverToDrainingServer(t *testing.T) {
	h := func(who string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, who) })
	}
	a, addr := start(t, Options{Handler: h("a"), IdleTimeout: time.Minute})
	b, bAddr := start(t, Options{Handler: h("b"), IdleTimeout: time.Minute})
	cl := dial(t, addr)
	cl.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	cl.read("GET")
	// b drains, with an idle connection of its own that keeps its
	// Shutdown waiting.
	own := dial(t, bAddr)
	own.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	own.read("GET")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hold := make(chan struct{})
	go func() {
		defer close(hold)
		_ = b.Shutdown(ctx)
	}()
	testwait.Until(t, 5*time.Second, "b to stop accepting", func() bool { return b.acceptDone.Load() })
	if err := a.HandOver(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	cl.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	resp, body := cl.read("GET")
	if body != "b" || !resp.Close {
		t.Fatalf("answered %q (close %v), want b's answer with Connection: close", body, resp.Close)
	}
	own.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	own.read("GET")
	<-hold

	// b is done: a connection handed to it now has nobody to serve it.
	c, addr2 := start(t, Options{Handler: h("c"), IdleTimeout: time.Minute})
	cl2 := dial(t, addr2)
	cl2.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	cl2.read("GET")
	if err := c.HandOver(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	_ = cl2.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := cl2.br.Read(make([]byte, 1)); err == nil {
		t.Fatalf("read %d bytes from a connection nobody serves", n)
	}
}

// A connection whose next request arrives just as the server handing over
// decides to wake it moves with that request, and the wake-up never
// reaches its socket after it moved: the successor's next wait is not cut
// short (which closed the connection under the client's next request).
func TestHandOverWakeDoesNotFollowTheConnection(t *testing.T) {
	h := func(who string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, who) })
	}
	old, addr := start(t, Options{Handler: h("old"), IdleTimeout: time.Minute})
	next, _ := start(t, Options{Handler: h("new"), IdleTimeout: time.Minute})
	cl := dial(t, addr)
	cl.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	cl.read("GET")
	testwait.Until(t, 5*time.Second, "the connection to wait for its next request", func() bool {
		old.mu.Lock()
		defer old.mu.Unlock()
		for c := range old.conns {
			c.parkMu.Lock()
			parked := c.parked
			c.parkMu.Unlock()
			return parked
		}
		return false
	})

	// The request comes in after the move is decided and before the wait
	// is ended. A connection not held back until the wake-up would be
	// answered by the successor and wait there for its next request well
	// within the hook's pause, when the wake-up's deadline strikes.
	first := make(chan string, 1)
	wakeHook = func() {
		wakeHook = nil
		cl.send("GET /1 HTTP/1.1\r\nHost: a\r\n\r\n")
		go func() {
			_, body := cl.read("GET")
			first <- body
		}()
		time.Sleep(300 * time.Millisecond)
	}
	defer func() { wakeHook = nil }()
	if err := old.HandOver(context.Background(), next); err != nil {
		t.Fatal(err)
	}
	if body := <-first; body != "new" {
		t.Fatalf("first answer %q, want the successor's", body)
	}
	cl.send("GET /2 HTTP/1.1\r\nHost: a\r\n\r\n")
	if _, body := cl.read("GET"); body != "new" {
		t.Fatalf("next answer %q, want the successor's", body)
	}
}

// dialMaybeTLS is dial, over TLS when cfg is set.
func dialMaybeTLS(t *testing.T, addr string, cfg *tls.Config) *client {
	t.Helper()
	if cfg == nil {
		return dial(t, addr)
	}
	c := dial(t, addr)
	tc := tls.Client(c.c, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
	c.c = tc
	c.br.Reset(tc)
	return c
}

// testTLSConfig is a server config with httptest's certificate.
func testTLSConfig(t *testing.T) *tls.Config {
	t.Helper()
	ts := httptest.NewUnstartedServer(http.NotFoundHandler())
	ts.StartTLS()
	cfg := ts.TLS.Clone()
	ts.Close()
	cfg.NextProtos = []string{"http/1.1"}
	return cfg
}
