package proxy

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/internal/testwait"
)

// pathLog counts, per fast path, the times it was taken and passed over.
type pathLog struct {
	mu  sync.Mutex
	got map[string][2]int // [slow, fast]
}

// recordPaths makes took report to the returned log until the test ends.
func recordPaths(t *testing.T) *pathLog {
	l := &pathLog{got: map[string][2]int{}}
	f := func(path string, fast bool) {
		l.mu.Lock()
		defer l.mu.Unlock()
		n := l.got[path]
		if fast {
			n[1]++
		} else {
			n[0]++
		}
		l.got[path] = n
	}
	pathHook.Store(&f)
	t.Cleanup(func() { pathHook.Store(nil) })
	return l
}

// take returns the counts so far, and starts again from zero.
func (l *pathLog) take() map[string][2]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	got := l.got
	l.got = map[string][2]int{}
	return got
}

// wrappedTransport hides everything of a transport but RoundTrip and
// CloseIdleConnections, as a metrics or tracing wrapper would.
type wrappedTransport struct{ t Transport }

func (w wrappedTransport) RoundTrip(r *http.Request) (*http.Response, error) { return w.t.RoundTrip(r) }
func (w wrappedTransport) CloseIdleConnections()                             { w.t.CloseIdleConnections() }

// streamed answers in two flushed pieces, so the response has no length
// and the forwarder asks whether its body would wait.
func streamed(w http.ResponseWriter, _ *http.Request) {
	_, _ = io.WriteString(w, "one ")
	w.(http.Flusher).Flush()
	_, _ = io.WriteString(w, "two")
}

// TestFastPathsTaken proves that each fast path (see fastpath.go) is
// taken with the values that offer it: the proxy on its own HTTP/1.1
// server (a real h1server listener on loopback) with its own transport
// takes all four; behind net/http's server the request context's watch
// and the header adoption are passed over, and behind a transport wrapper
// the send and the body's wait; the answer is the same every way.
func TestFastPathsTaken(t *testing.T) {
	f := startFleet(t, 1, http.HandlerFunc(streamed))
	plain := testPool(f, nil)
	wrapped := testPool(f, func(pc *PoolConfig) {
		pc.Name = "wrapped"
		pc.Transport = wrappedTransport{NewTransport(TransportOptions{Connect: time.Second})}
	})
	p := startProxyListener(t, ListenerConfig{Name: "http", Routes: []Route{
		{PathPrefix: "/wrapped/", Pool: "wrapped"},
		{Pool: "app"},
	}}, plain, wrapped)
	nethttp := httptest.NewServer(p.Handler("http"))
	t.Cleanup(nethttp.Close)
	log := recordPaths(t)

	for _, tc := range []struct {
		name, url string
		fast      map[string]bool
	}{
		{"h1server", p.URL + "/", map[string]bool{pathWatch: true, pathAdopt: true, pathSend: true, pathWaiting: true}},
		{"net/http server", nethttp.URL + "/", map[string]bool{pathWatch: false, pathAdopt: false, pathSend: true, pathWaiting: true}},
		{"h1server, wrapped transport", p.URL + "/wrapped/", map[string]bool{pathWatch: true, pathAdopt: true, pathSend: false, pathWaiting: false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log.take()
			code, zone, body := get(t, http.DefaultClient, "GET", tc.url, nil, nil)
			if code != 200 || zone != "a" || body != "one two" {
				t.Fatalf("got %d from zone %q: %q; want 200 from a: \"one two\"", code, zone, body)
			}
			got := log.take()
			for path, fast := range tc.fast {
				want := [2]int{1, 0}
				if fast {
					want = [2]int{0, 1}
				}
				// The wrapped transport's RoundTrip starts a lifetime of its
				// own under the attempt's context, which no server made.
				if path == pathWatch && tc.name == "h1server, wrapped transport" {
					want[0]++
				}
				if got[path] != want {
					t.Errorf("%s: [slow fast] = %v, want %v", path, got[path], want)
				}
			}
		})
	}
}

// TestClientGoneEndsAttemptEitherWay: a client that leaves while its
// backend hangs ends the attempt (the proxy closes the backend's
// connection), whether its server's context told the attempt directly
// (h1server, the watch) or through context.AfterFunc (net/http's).
func TestClientGoneEndsAttemptEitherWay(t *testing.T) {
	f := startFleet(t, 1, nil)
	for _, b := range f.all {
		b.mode.Store(modeHang)
	}
	p := startProxy(t, testPool(f, func(pc *PoolConfig) {
		pc.Timeouts = Timeouts{Connect: time.Second, PerTry: 10 * time.Second, Request: 10 * time.Second}
	}))
	nethttp := httptest.NewServer(p.Handler("http"))
	t.Cleanup(nethttp.Close)
	log := recordPaths(t)
	a := f.byZone["a"][0]
	for i, tc := range []struct {
		name, url string
		watched   bool
	}{
		{"h1server", p.URL, true},
		{"net/http server", nethttp.URL, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log.take()
			before := a.hits.Load()
			ctx, cancel := context.WithCancel(context.Background())
			req, _ := http.NewRequestWithContext(ctx, "GET", tc.url+"/", nil)
			errc := make(chan error, 1)
			go func() {
				resp, err := http.DefaultClient.Do(req)
				if err == nil {
					_ = resp.Body.Close()
				}
				errc <- err
			}()
			testwait.Until(t, 5*time.Second, "the request to reach the backend", func() bool { return a.hits.Load() > before })
			cancel()
			if err := <-errc; err == nil {
				t.Fatal("the request succeeded; its client had left")
			}
			testwait.Until(t, 5*time.Second, "the hung attempt's connection to close", func() bool {
				return a.gone.Load() == int64(i+1)
			})
			want := [2]int{1, 0}
			if tc.watched {
				want = [2]int{0, 1}
			}
			if got := log.take()[pathWatch]; got != want {
				t.Errorf("%s: [slow fast] = %v, want %v", pathWatch, got, want)
			}
		})
	}
	if n := f.hits("b") + f.hits("c"); n != 0 {
		t.Errorf("%d requests reached other zones: a client that left is never retried", n)
	}
}
