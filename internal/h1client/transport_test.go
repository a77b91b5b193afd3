package h1client

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

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

