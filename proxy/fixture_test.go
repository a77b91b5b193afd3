package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/balancer"
	"github.com/azimuthproxy/azimuth/internal/h1server"
	"github.com/prometheus/client_golang/prometheus"
)

// Backend behaviours for testBackend.mode.
const (
	modeOK      = iota
	modeHang    // read the request, never answer
	modeStatus  // answer with testBackend.status
	modeRefused // listener closed: connections refused
)

// testBackend is a real HTTP server on a zone's loopback address that
// counts what it receives and can be switched between behaviours.
type testBackend struct {
	addr, zone string
	mode       atomic.Int32
	status     atomic.Int32
	delay      atomic.Int64 // ns before answering
	hits       atomic.Int64
	gone       atomic.Int64 // hung requests whose connection the proxy closed
	mu         sync.Mutex
	byMethod   map[string]int
	srv        *http.Server
	release    chan struct{}
}

func startBackend(t *testing.T, ip, zone string, h http.Handler) *testBackend {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatalf("listening on %s (zones are loopback addresses 127.0.Z.x): %v", ip, err)
	}
	b := &testBackend{addr: ln.Addr().String(), zone: zone, byMethod: map[string]int{}, release: make(chan struct{})}
	b.status.Store(503)
	b.srv = &http.Server{Handler: b.handler(h), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = b.srv.Serve(ln) }()
	t.Cleanup(func() {
		close(b.release)
		_ = b.srv.Close()
	})
	return b
}

func (b *testBackend) handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		b.mu.Lock()
		b.byMethod[r.Method]++
		b.mu.Unlock()
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("X-Backend", b.addr)
		w.Header().Set("X-Backend-Zone", b.zone)
		if d := time.Duration(b.delay.Load()); d > 0 {
			time.Sleep(d)
		}
		switch b.mode.Load() {
		case modeHang:
			select {
			case <-r.Context().Done():
				b.gone.Add(1)
			case <-b.release:
			}
			return
		case modeStatus:
			w.WriteHeader(int(b.status.Load()))
			fmt.Fprintf(w, "status from %s\n", b.addr)
			return
		}
		if next != nil {
			next.ServeHTTP(w, r)
			return
		}
		fmt.Fprintf(w, "hello from %s\n", b.addr)
	})
}

// refuse closes the backend's listener so connections are refused.
func (b *testBackend) refuse() {
	b.mode.Store(modeRefused)
	_ = b.srv.Close()
}

func (b *testBackend) methodHits(m string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.byMethod[m]
}

// fleet is backends in zones a, b and c: zone z's on 127.0.z.x.
type fleet struct {
	all    []*testBackend
	byZone map[string][]*testBackend
}

func startFleet(t *testing.T, perZone int, h http.Handler) *fleet {
	f := &fleet{byZone: map[string][]*testBackend{}}
	for zi, z := range []string{"a", "b", "c"} {
		for i := range perZone {
			b := startBackend(t, fmt.Sprintf("127.0.%d.%d", zi+1, i+1), z, h)
			f.all = append(f.all, b)
			f.byZone[z] = append(f.byZone[z], b)
		}
	}
	return f
}

func (f *fleet) specs() []balancer.Spec {
	var out []balancer.Spec
	for _, b := range f.all {
		out = append(out, balancer.Spec{Address: b.addr, Zone: b.zone, Weight: 1})
	}
	return out
}

func (f *fleet) hits(zone string) int64 {
	var n int64
	for _, b := range f.byZone[zone] {
		n += b.hits.Load()
	}
	return n
}

// recordingObserver counts passive-health reports per backend.
type recordingObserver struct {
	mu       sync.Mutex
	failures map[string]int
	reports  int
}

func (o *recordingObserver) Observe(b *balancer.Backend, failed bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.reports++
	if failed {
		o.failures[b.Address()]++
	}
}

func (o *recordingObserver) totalFailures() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, v := range o.failures {
		n += v
	}
	return n
}

// testPool returns a pool over the fleet preferring zone a, with the retry
// settings the tests vary.
func testPool(f *fleet, mod func(*PoolConfig)) PoolConfig {
	bp := balancer.NewPool("app", balancer.Options{LocalZone: "a", SpillBelow: 0.7, PanicBelow: 0.3})
	bp.Update(f.specs())
	pc := PoolConfig{
		Name:      "app",
		Balancer:  bp,
		Transport: NewTransport(TransportOptions{Connect: time.Second}),
		Timeouts:  Timeouts{Connect: time.Second, PerTry: 300 * time.Millisecond, Request: 3 * time.Second},
		Retry: RetryPolicy{
			Attempts:           3,
			On:                 causes(CauseConnect, CauseTimeout, CauseReset, CauseStatus),
			Statuses:           []int{502, 503},
			IdempotencyHeader:  "Idempotency-Key",
			MaxBody:            64 << 10,
			BudgetPercent:      20,
			BudgetMinPerSecond: 10,
			BudgetWindow:       10 * time.Second,
		},
	}
	if mod != nil {
		mod(&pc)
	}
	return pc
}

func causes(cs ...Cause) (on [numCauses]bool) {
	for _, c := range cs {
		on[c] = true
	}
	return on
}

// testProxy is a Server on a real loopback listener.
type testProxy struct {
	*Server
	URL string
	reg *prometheus.Registry
}

func startProxy(t *testing.T, pools ...PoolConfig) *testProxy {
	t.Helper()
	return startProxyListener(t, ListenerConfig{Name: "http", Routes: []Route{{Pool: pools[0].Name}}}, pools...)
}

// startProxyListener is startProxy with the listener's settings given.
func startProxyListener(t *testing.T, lc ListenerConfig, pools ...PoolConfig) *testProxy {
	t.Helper()
	var access *AccessLog
	if testing.Verbose() {
		// go test -v shows every request's attempts.
		access = NewAccessLog(slog.New(slog.NewTextHandler(os.Stderr, nil)), 1)
	}
	return startProxyLogging(t, lc, access, pools...)
}

// startProxyLogging is startProxyListener with the access log given.
func startProxyLogging(t *testing.T, lc ListenerConfig, access *AccessLog, pools ...PoolConfig) *testProxy {
	t.Helper()
	reg := prometheus.NewRegistry()
	ctx, cancel := context.WithCancel(context.Background())
	o := Options{Logger: slog.New(slog.DiscardHandler), Metrics: NewMetrics(reg), AccessLog: access}
	s := NewServer(ctx, o)
	g, err := s.Build(Config{Listeners: []ListenerConfig{lc}, Pools: pools})
	if err != nil {
		t.Fatal(err)
	}
	s.Publish(g)
	// The proxy's own HTTP/1.1 server, as a plain listener runs it, with
	// h2c connections handed to net/http's.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	h := s.Handler("http")
	srv := h1server.New(h1server.Options{Handler: h, Logger: o.Logger, H2C: &http.Server{Handler: h, Protocols: &p}})
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = srv.Close()
		for _, p := range pools {
			if c, ok := p.Transport.(interface{ CloseIdleConnections() }); ok {
				c.CloseIdleConnections()
			}
		}
		cancel()
		s.Wait()
	})
	return &testProxy{Server: s, URL: "http://" + ln.Addr().String(), reg: reg}
}

// get sends one request through the proxy and returns status, the zone that
// answered and the body.
func get(t *testing.T, c *http.Client, method, url string, body io.Reader, hdr http.Header) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil && !errors.Is(err, io.EOF) {
		t.Fatalf("reading body: %v", err)
	}
	return resp.StatusCode, resp.Header.Get("X-Backend-Zone"), strings.TrimSpace(string(b))
}
