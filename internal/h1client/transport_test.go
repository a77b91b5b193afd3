package h1client

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// rawBackend serves each connection to a loopback listener with serve,
// on a goroutine of its own, and closes it after; the test's cleanup
// closes the listener, ends its accept loop, then waits for the
// connections (an Add beside the Wait would be a race).
func rawBackend(t *testing.T, serve func(nc net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns sync.WaitGroup
	accepting := make(chan struct{})
	t.Cleanup(func() { _ = ln.Close(); <-accepting; conns.Wait() })
	go func() {
		defer close(accepting)
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Go(func() {
				defer func() { _ = nc.Close() }()
				serve(nc)
			})
		}
	}()
	return ln.Addr().String()
}

// testAttempt is a fastpath.Attempt that a test ends.
type testAttempt struct {
	mu    sync.Mutex
	ended bool
	abort func()
}

func (a *testAttempt) OnEnd(f func()) {
	a.mu.Lock()
	if a.ended {
		a.mu.Unlock()
		f()
		return
	}
	a.abort = f
	a.mu.Unlock()
}

func (a *testAttempt) Clear() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.abort = nil
	return !a.ended
}

func (a *testAttempt) SendAgain() bool { return a.Clear() }

func (a *testAttempt) end() {
	a.mu.Lock()
	f := a.abort
	a.ended, a.abort = true, nil
	a.mu.Unlock()
	if f != nil {
		f()
	}
}

func newTestTransport() *Transport {
	return New(Options{HandshakeTimeout: time.Second, MaxIdlePerBackend: 4, IdleTimeout: time.Minute,
		MaxHeadBytes: 64 << 10, ExpectContinueTimeout: time.Second})
}

// A connection goes back to the pool once its response was read to the
// end, and the next exchange takes it.
func TestSendReusesTheConnection(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()
	tr := newTestTransport()
	defer tr.CloseIdleConnections()
	for i := range 3 {
		req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
		resp, err := tr.Send(req, &testAttempt{}, nil)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		body, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil || string(body) != "ok" {
			t.Fatalf("request %d: body %q, %v", i, body, err)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("three requests took %d connections, want 1", n)
	}
}

// The end of the attempt aborts an exchange whose backend never answers:
// Send returns at once, and the backend sees its connection closed.
func TestSendEndsWithTheAttempt(t *testing.T) {
	closed := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // the client closed the connection
		close(closed)
	}))
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()
	tr := newTestTransport()
	a := &testAttempt{}
	time.AfterFunc(50*time.Millisecond, a.end)
	req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
	if resp, err := tr.Send(req, a, nil); err == nil {
		_ = resp.Body.Close()
		t.Fatalf("got %d from a backend that never answers", resp.StatusCode)
	}
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("the connection was not closed when the attempt ended")
	}
	// An attempt that has ended sends nothing.
	req, _ = http.NewRequest("GET", "http://"+addr+"/", nil)
	if _, err := tr.Send(req, a, nil); err != ErrAttemptEnded {
		t.Fatalf("Send within an ended attempt = %v, want ErrAttemptEnded", err)
	}
}

// A GET that fails on a reused connection before any response byte goes
// out again once, on a new connection, not on each idle connection the
// backend holds: however many connections a backend drops at once, it
// sees the request at most twice.
func TestSendAgainOnceOnANewConnection(t *testing.T) {
	const warm = 4
	var (
		heads   atomic.Int32 // requests the backend read
		dials   atomic.Int32
		dropped atomic.Bool // from now on a request is read and its connection closed
		allIn   = make(chan struct{})
		once    sync.Once
	)
	addr := rawBackend(t, func(nc net.Conn) {
		dials.Add(1)
		br := bufio.NewReader(nc)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, req.Body)
			if heads.Add(1) == warm {
				once.Do(func() { close(allIn) })
			}
			if dropped.Load() {
				return // as a backend restarting between requests
			}
			<-allIn
			if _, err := io.WriteString(nc, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"); err != nil {
				return
			}
		}
	})
	tr := newTestTransport() // keeps up to 4 idle connections per backend
	defer tr.CloseIdleConnections()

	// Four requests at once leave four idle connections.
	var wg sync.WaitGroup
	for range warm {
		wg.Go(func() {
			req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
			resp, err := tr.Send(req, &testAttempt{}, nil)
			if err != nil {
				t.Errorf("warming request: %v", err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
		})
	}
	wg.Wait()
	if n := dials.Load(); n != warm {
		t.Fatalf("%d warming requests made %d connections, want %d", warm, n, warm)
	}

	dropped.Store(true)
	heads.Store(0)
	req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
	if resp, err := tr.Send(req, &testAttempt{}, nil); err == nil {
		_ = resp.Body.Close()
		t.Fatalf("got %d from a backend that closes every connection", resp.StatusCode)
	}
	if n := heads.Load(); n != 2 {
		t.Errorf("the backend read the failing GET %d times, want 2 (once on an idle connection, once on a new one)", n)
	}
	if n := dials.Load(); n != warm+1 {
		t.Errorf("%d connections were dialled, want %d (the resend's own)", n, warm+1)
	}
}

// outAfterFirst is an attempt whose backend is taken out once the resend
// was decided: the second SendAgain, asked when the new connection is up,
// says no.
type outAfterFirst struct {
	testAttempt
	asked atomic.Int32
}

func (a *outAfterFirst) SendAgain() bool { return a.asked.Add(1) == 1 && a.Clear() }

// A resend whose backend was taken out while its connection was being
// made is not sent: the caller's attempt loop sends it elsewhere.
func TestSendAgainNotToABackendTakenOut(t *testing.T) {
	var heads, served atomic.Int32
	addr := rawBackend(t, func(nc net.Conn) {
		br := bufio.NewReader(nc)
		for {
			if _, err := http.ReadRequest(br); err != nil {
				return
			}
			heads.Add(1)
			if served.Add(1) > 1 {
				return // drops every request after the first
			}
			if _, err := io.WriteString(nc, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"); err != nil {
				return
			}
		}
	})
	tr := newTestTransport()
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
	resp, err := tr.Send(req, &testAttempt{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()

	req, _ = http.NewRequest("GET", "http://"+addr+"/", nil)
	if resp, err := tr.Send(req, &outAfterFirst{}, nil); err == nil {
		_ = resp.Body.Close()
		t.Fatal("a GET to a backend that drops it and was taken out was answered")
	}
	if n := heads.Load(); n != 2 {
		t.Errorf("the backend read %d requests, want 2 (the first, and the GET on the kept connection; no resend)", n)
	}
}

// outAttempt is an attempt whose backend is out: SendAgain says no.
type outAttempt struct{ testAttempt }

func (a *outAttempt) SendAgain() bool { return false }

// A first send whose backend was taken out while its connection was
// being made sends nothing: the backend reads no request, and the caller
// gets ErrBackendOut (a request on a kept connection, made before, is
// not affected).
func TestFirstSendNotToABackendTakenOut(t *testing.T) {
	var heads atomic.Int32
	addr := rawBackend(t, func(nc net.Conn) {
		br := bufio.NewReader(nc)
		for {
			if _, err := http.ReadRequest(br); err != nil {
				return
			}
			heads.Add(1)
			if _, err := io.WriteString(nc, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"); err != nil {
				return
			}
		}
	})
	tr := newTestTransport()
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest("POST", "http://"+addr+"/", strings.NewReader("body"))
	if resp, err := tr.Send(req, &outAttempt{}, nil); !errors.Is(err, ErrBackendOut) {
		if resp != nil {
			_ = resp.Body.Close()
		}
		t.Fatalf("first send to a backend taken out: %v, want ErrBackendOut", err)
	}
	if n := heads.Load(); n != 0 {
		t.Fatalf("the backend read %d requests, want none", n)
	}
	// A connection kept from before carries the request: SendAgain is
	// for connections made for it.
	req, _ = http.NewRequest("GET", "http://"+addr+"/", nil)
	resp, err := tr.Send(req, &testAttempt{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	req, _ = http.NewRequest("GET", "http://"+addr+"/", nil)
	if resp, err = tr.Send(req, &outAttempt{}, nil); err != nil {
		t.Fatalf("a send on a kept connection: %v", err)
	}
	_ = resp.Body.Close()
}

// With PROXY headers a backend has an idle key per client: the idle
// connections stay within MaxIdlePerBackend across keys, and a key goes
// with its last connection.
func TestIdlePerBackendAcrossProxyKeys(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	// The test server reads no PROXY header: the "header" varies by
	// client and the dialled connection drops it (discardFirst).
	tr := New(Options{
		HandshakeTimeout: time.Second, MaxIdlePerBackend: 2, IdleTimeout: time.Minute,
		MaxHeadBytes: 1 << 20, ExpectContinueTimeout: time.Second,
		ProxyHeader: func(r *http.Request) []byte { return []byte(r.Header.Get("X-Client")) },
	})
	defer tr.CloseIdleConnections()
	tr.o.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &discardFirst{Conn: c}, nil
	}
	for i := range 5 {
		req, _ := http.NewRequest("GET", srv.URL, nil)
		req.Header.Set("X-Client", "client-"+strconv.Itoa(i))
		resp, err := tr.Send(req, &testAttempt{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
	}
	tr.mu.Lock()
	keys, idle := len(tr.idle), 0
	for _, l := range tr.idle {
		idle += len(l)
	}
	tr.mu.Unlock()
	if idle != 2 || keys != 2 {
		t.Errorf("%d idle connections under %d keys, want 2 under 2 (MaxIdlePerBackend across keys)", idle, keys)
	}
	// A client's request takes its connection, and its key goes with it.
	req, _ := http.NewRequest("GET", srv.URL, nil)
	req.Header.Set("X-Client", "client-0")
	resp, err := tr.Send(req, &testAttempt{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if n := tr.idleBy[strings.TrimPrefix(srv.URL, "http://")]; n != 2 {
		t.Errorf("idle count %d, want 2", n)
	}
}

// discardFirst drops the PROXY "header" a test writes first (the test
// server reads none).
type discardFirst struct {
	net.Conn
	done bool
}

func (d *discardFirst) Write(b []byte) (int, error) {
	if !d.done {
		d.done = true
		return len(b), nil
	}
	return d.Conn.Write(b)
}
