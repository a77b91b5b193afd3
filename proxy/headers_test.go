package proxy

import (
	"encoding/json"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// echoHeaders is a backend handler that answers with the headers it got.
var echoHeaders = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	h := r.Header.Clone()
	h.Set("Host", r.Host)
	_ = json.NewEncoder(w).Encode(h)
})

func TestForwardingHeaders(t *testing.T) {
	b := startBackend(t, "127.0.1.1", "a", echoHeaders)
	for _, tc := range []struct {
		name    string
		trusted []netip.Prefix
		in      http.Header
		want    map[string]string // header -> exact value; "" means absent
	}{
		{
			name: "untrusted client: forwarded headers replaced, hop-by-hop removed",
			in: http.Header{
				"X-Forwarded-For": {"6.6.6.6"}, "X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {"evil.example"},
				"Connection": {"keep-alive, X-Secret"}, "X-Secret": {"s"}, "Keep-Alive": {"timeout=5"},
				"Proxy-Authorization": {"Basic x"}, "X-Request-Id": {"req-123"},
			},
			want: map[string]string{
				"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Proto": "http", "X-Forwarded-Host": "app.example.com",
				"X-Secret": "", "Keep-Alive": "", "Proxy-Authorization": "", "X-Request-Id": "req-123",
				"Host": "app.example.com",
			},
		},
		{
			name:    "trusted proxy: its chain is kept and appended to",
			trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
			in:      http.Header{"X-Forwarded-For": {"203.0.113.9, 10.1.1.1"}, "X-Forwarded-Proto": {"https"}},
			want:    map[string]string{"X-Forwarded-For": "203.0.113.9, 10.1.1.1, 127.0.0.1", "X-Forwarded-Proto": "https"},
		},
		{
			name: "an overlong request id is replaced",
			in:   http.Header{"X-Request-Id": {strings.Repeat("x", 200)}},
			want: map[string]string{},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pc := singleBackendPool(b.addr, "http1")
			px := startProxyListener(t, ListenerConfig{Name: "http", Routes: []Route{{Pool: "app"}}, TrustedProxies: tc.trusted}, pc)
			req, _ := http.NewRequest("GET", px.URL+"/h", nil)
			req.Host = "app.example.com"
			for k, v := range tc.in {
				req.Header[k] = v
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var got http.Header
			if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
				t.Fatal(err)
			}
			for k, want := range tc.want {
				if v := strings.Join(got.Values(k), ", "); v != want {
					t.Errorf("%s = %q, want %q", k, v, want)
				}
			}
			id := got.Get("X-Request-Id")
			if id == "" || len(id) > maxRequestIDLen {
				t.Errorf("X-Request-Id = %q, want a kept or generated id", id)
			}
		})
	}
}

func TestNoRouteIs404(t *testing.T) {
	b := startBackend(t, "127.0.1.1", "a", nil)
	px := startProxyListener(t, ListenerConfig{Name: "http", Routes: []Route{{Host: "only.example.com", Pool: "app"}}},
		singleBackendPool(b.addr, "http1"))
	resp, err := http.Get(px.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound || string(body) != "no route\n" {
		t.Fatalf("got %d %q, want 404 \"no route\"", resp.StatusCode, body)
	}
	if b.hits.Load() != 0 {
		t.Fatalf("an unrouted request reached a backend")
	}
}

func TestNoBackendIs503WithRetryAfter(t *testing.T) {
	pc := singleBackendPool("127.0.1.1:1", "http1")
	pc.Balancer.Backends()[0].SetDrained(true)
	px := startProxy(t, pc)
	start := time.Now()
	resp, err := http.Get(px.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("got %d Retry-After=%q, want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("answer took %v; a pool without backends should answer at once", took)
	}
}

func TestMaxBodyIs413(t *testing.T) {
	b := startBackend(t, "127.0.1.1", "a", nil)
	px := startProxyListener(t, ListenerConfig{Name: "http", Routes: []Route{{Pool: "app"}}, MaxBody: 1000},
		singleBackendPool(b.addr, "http1"))
	for _, tc := range []struct {
		name    string
		method  string
		body    io.Reader
		want    int
		reached int64
	}{
		{"declared length over the limit", "POST", strings.NewReader(strings.Repeat("x", 2000)), 413, 0},
		// A replayable body is read before it is sent; a POST's streams,
		// and its backend connection breaks at the limit.
		{"chunked replayable body over the limit", "PUT", struct{ io.Reader }{strings.NewReader(strings.Repeat("x", 2000))}, 413, 0},
		// Its head may reach the backend's handler before the break, or
		// the break may come first: at most one request (-1 below).
		{"chunked POST body over the limit", "POST", struct{ io.Reader }{strings.NewReader(strings.Repeat("x", 2000))}, 413, -1},
		{"under the limit", "POST", strings.NewReader("small"), 200, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := b.hits.Load()
			req, _ := http.NewRequest(tc.method, px.URL+"/", tc.body)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
			}
			if got := b.hits.Load() - before; tc.reached >= 0 && got != tc.reached || tc.reached < 0 && got > 1 {
				t.Fatalf("backend saw %d requests, want %d (-1: at most 1)", got, tc.reached)
			}
		})
	}
}
