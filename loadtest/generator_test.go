package loadtest

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"

	"github.com/azimuthproxy/azimuth/internal/pki"
)

// counting is a loopback backend that counts requests and protocols and
// answers after a delay chosen per request.
type counting struct {
	n      atomic.Int64
	mu     sync.Mutex
	protos map[string]int
	delay  func(now time.Time) time.Duration
}

func (c *counting) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.n.Add(1)
	c.mu.Lock()
	if c.protos == nil {
		c.protos = map[string]int{}
	}
	c.protos[r.Proto]++
	c.mu.Unlock()
	if c.delay != nil {
		time.Sleep(c.delay(time.Now())) // the delay under test is the backend's service time
	}
	w.Header().Set("X-Backend-Zone", "z1")
	w.Header().Set("X-Backend", "b1")
	_, _ = w.Write([]byte("ok\n"))
}

func mustRun(t *testing.T, o Options) *Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := Run(ctx, o)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return res
}

func TestHistogramAccuracy(t *testing.T) {
	for _, delay := range []time.Duration{20 * time.Millisecond, 50 * time.Millisecond} {
		t.Run(delay.String(), func(t *testing.T) {
			srv := httptest.NewServer(&counting{delay: func(time.Time) time.Duration { return delay }})
			defer srv.Close()
			res := mustRun(t, Options{URL: srv.URL, Concurrency: 4, Requests: 100})
			if res.Requests != 100 || res.Succeeded != 100 {
				t.Fatalf("requests %d succeeded %d, want 100/100", res.Requests, res.Succeeded)
			}
			p50 := time.Duration(res.Latency.P50) * time.Microsecond
			if p50 < delay || p50 > delay+5*time.Millisecond {
				t.Errorf("p50 %v, want within [%v, %v]", p50, delay, delay+5*time.Millisecond)
			}
			if min := time.Duration(res.hist.Min()) * time.Microsecond; min < delay {
				t.Errorf("min %v below the fixed delay %v", min, delay)
			}
			if res.Zones["z1"] != 100 || res.Backends["b1"] != 100 || res.Status["200"] != 100 {
				t.Errorf("tallies zones %v backends %v status %v", res.Zones, res.Backends, res.Status)
			}
		})
	}
}

func TestOpenLoopRate(t *testing.T) {
	c := &counting{delay: func(time.Time) time.Duration { return time.Millisecond }}
	srv := httptest.NewServer(c)
	defer srv.Close()
	const rate, d = 400, 5 * time.Second
	res := mustRun(t, Options{URL: srv.URL, Rate: rate, Duration: d})
	want := float64(rate) * d.Seconds()
	got := float64(c.n.Load())
	if got < want*0.98 || got > want*1.02 {
		t.Errorf("backend received %v requests, want %v ±2%%", got, want)
	}
	if float64(res.Requests) != got {
		t.Errorf("generator counted %d, backend %v", res.Requests, got)
	}
	if len(res.Timeline) != 5 {
		t.Fatalf("timeline has %d seconds, want 5", len(res.Timeline))
	}
	for _, s := range res.Timeline {
		if s.Requests < rate*98/100 || s.Requests > rate*102/100 || s.Zones["z1"] != s.Requests {
			t.Errorf("second %d: %d requests, zones %v; want %d ±2%%", s.Second, s.Requests, s.Zones, rate)
		}
	}
}

// TestStallShowsInP99 stalls the backend for 1s in a 5s open-loop run: the
// requests planned during the stall wait for it, and since latency counts
// from the planned send time the stall lands in p99 (without the correction
// a stalled client would just send fewer requests and p99 would stay low).
func TestStallShowsInP99(t *testing.T) {
	var first atomic.Pointer[time.Time]
	c := &counting{delay: func(now time.Time) time.Duration {
		first.CompareAndSwap(nil, &now)
		stallFrom := first.Load().Add(2 * time.Second)
		stallTo := stallFrom.Add(time.Second)
		if now.After(stallFrom) && now.Before(stallTo) {
			return stallTo.Sub(now)
		}
		return time.Millisecond
	}}
	srv := httptest.NewServer(c)
	defer srv.Close()
	res := mustRun(t, Options{URL: srv.URL, Rate: 200, Duration: 5 * time.Second, Concurrency: 8})
	p99 := time.Duration(res.Latency.P99) * time.Microsecond
	if p99 < 500*time.Millisecond {
		t.Errorf("p99 %v, want ≥ 500ms: a 1s stall must show", p99)
	}
	if res.Requests != 1000 || res.Failed != 0 {
		t.Errorf("requests %d failed %d, want 1000 and 0", res.Requests, res.Failed)
	}
	// The stalled second carries the slow tail, the first second none.
	if s0 := res.Timeline[0].P99; s0 > 300_000 {
		t.Errorf("second 0 p99 %dµs, want a fast second", s0)
	}
	if s2 := res.Timeline[2].P99; s2 < 500_000 {
		t.Errorf("second 2 p99 %dµs, want the stall", s2)
	}
}

func TestErrorClasses(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := ln.Addr().String()
	ln.Close()
	silent, err := net.Listen("tcp", "127.0.0.1:0") // accepts (backlog) but never answers
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	tests := []struct {
		name string
		url  string
		want string
	}{
		{"refused", "http://" + closedAddr + "/", "refused"},
		{"timeout", "http://" + silent.Addr().String() + "/", "timeout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := mustRun(t, Options{URL: tc.url, Concurrency: 2, Requests: 4, Timeout: 200 * time.Millisecond})
			if res.Errors[tc.want] != 4 || res.Failed != 4 {
				t.Errorf("errors %v failed %d, want 4 %s", res.Errors, res.Failed, tc.want)
			}
		})
	}
}

func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	iss, err := pki.SelfSigned(pki.Leaf{CN: "loopback", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, NotAfter: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return iss.TLSCertificate()
}

func TestProtocols(t *testing.T) {
	cert := selfSigned(t)
	tests := []struct {
		name      string
		proto     Protocol
		start     func(t *testing.T, h http.Handler) string
		wantProto string
	}{
		{"h1", H1, func(t *testing.T, h http.Handler) string {
			s := httptest.NewServer(h)
			t.Cleanup(s.Close)
			return s.URL
		}, "HTTP/1.1"},
		{"h2 over TLS with ALPN", H2, func(t *testing.T, h http.Handler) string {
			s := httptest.NewUnstartedServer(h)
			s.EnableHTTP2 = true
			s.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
			s.StartTLS()
			t.Cleanup(s.Close)
			return s.URL
		}, "HTTP/2.0"},
		{"h2c prior knowledge", H2, func(t *testing.T, h http.Handler) string {
			s := httptest.NewUnstartedServer(h)
			s.Config.Protocols = new(http.Protocols)
			s.Config.Protocols.SetHTTP1(true)
			s.Config.Protocols.SetUnencryptedHTTP2(true)
			s.Start()
			t.Cleanup(s.Close)
			return s.URL
		}, "HTTP/2.0"},
		{"h3", H3, func(t *testing.T, h http.Handler) string {
			pc, err := net.ListenPacket("udp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			s := &http3.Server{Handler: h, TLSConfig: http3.ConfigureTLSConfig(&tls.Config{Certificates: []tls.Certificate{cert}})}
			done := make(chan struct{})
			go func() { defer close(done); _ = s.Serve(pc) }()
			t.Cleanup(func() { s.Close(); pc.Close(); <-done })
			return "https://" + pc.LocalAddr().String() + "/"
		}, "HTTP/3.0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &counting{}
			url := tc.start(t, c)
			res := mustRun(t, Options{URL: url, Protocol: tc.proto, Insecure: true, Concurrency: 4, Requests: 50, Method: "POST", Body: []byte("payload")})
			if res.Succeeded != 50 {
				t.Fatalf("succeeded %d of 50: errors %v status %v", res.Succeeded, res.Errors, res.Status)
			}
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.protos[tc.wantProto] != 50 {
				t.Errorf("server saw protocols %v, want 50 × %s", c.protos, tc.wantProto)
			}
		})
	}
	t.Run("untrusted certificate is a tls error", func(t *testing.T) {
		s := httptest.NewUnstartedServer(&counting{})
		s.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
		s.StartTLS()
		defer s.Close()
		res := mustRun(t, Options{URL: s.URL, Requests: 2, Concurrency: 1})
		if res.Errors["tls"] != 2 {
			t.Errorf("errors %v, want 2 tls", res.Errors)
		}
	})
}

// With Connections, h2 workers spread over that many connections, each
// carrying Concurrency/Connections streams; without, they share one.
func TestH2Connections(t *testing.T) {
	cert := selfSigned(t)
	for _, tc := range []struct {
		conns, workers, want int
	}{{0, 8, 1}, {4, 8, 4}, {8, 8, 8}} {
		t.Run(fmt.Sprintf("%d connections, %d workers", tc.conns, tc.workers), func(t *testing.T) {
			var opened atomic.Int32
			s := httptest.NewUnstartedServer(&counting{})
			s.EnableHTTP2 = true
			s.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
			s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
				if st == http.StateNew {
					opened.Add(1)
				}
			}
			s.StartTLS()
			defer s.Close()
			res := mustRun(t, Options{URL: s.URL, Protocol: H2, Insecure: true, Concurrency: tc.workers, Connections: tc.conns, Requests: 400})
			if res.Succeeded != 400 {
				t.Fatalf("succeeded %d of 400: errors %v", res.Succeeded, res.Errors)
			}
			if n := int(opened.Load()); n != tc.want {
				t.Errorf("%d connections opened, want %d", n, tc.want)
			}
		})
	}
}

func TestOptionsValidation(t *testing.T) {
	tests := []struct {
		name string
		o    Options
		want string
	}{
		{"no url", Options{}, "url is required"},
		{"bad scheme", Options{URL: "ftp://x/"}, "scheme must be http or https"},
		{"h3 needs https", Options{URL: "http://127.0.0.1/", Protocol: H3}, "needs an https url"},
		{"unknown protocol", Options{URL: "http://127.0.0.1/", Protocol: "spdy"}, "want h1, h2 or h3"},
		{"negative rate", Options{URL: "http://127.0.0.1/", Rate: -1}, "must not be negative"},
		{"connections with h1", Options{URL: "http://127.0.0.1/", Connections: 2}, "only for h2 and h3"},
		{"more connections than workers", Options{URL: "http://127.0.0.1/", Protocol: H2, Concurrency: 4, Connections: 8}, "more than the 4 workers"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Run(context.Background(), tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
	o, err := Options{URL: "http://127.0.0.1/"}.withDefaults()
	if err != nil || o.Duration != DefaultDuration || o.Method != "GET" || o.Protocol != H1 {
		t.Errorf("defaults %+v %v: want a bounded GET over h1", o, err)
	}
}
