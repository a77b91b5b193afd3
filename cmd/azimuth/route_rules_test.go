package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/internal/testwait"
)

// seen is what the echo backend saw of a request.
type seen struct {
	Path   string      `json:"path"`
	Host   string      `json:"host"`
	Header http.Header `json:"header"`
}

// echoBackend answers with what it saw, and with response headers for
// the rules to change.
func echoBackend(t *testing.T, ip string) string {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Internal-Version", "7.3.1")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(seen{Path: r.URL.EscapedPath(), Host: r.Host, Header: r.Header})
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// Route rules end to end through the binary: a path prefix stripped and
// replaced, the Host rewritten, request and response headers set, added
// and removed, forwarding and hop-by-hop hygiene kept; rate limits by
// client address and by header answer 429 with Retry-After and count in
// azimuth_rate_limited_total.
func TestRouteRulesAndRateLimits(t *testing.T) {
	be := echoBackend(t, "127.0.1.51")
	dir := t.TempDir()
	path := filepath.Join(dir, "azimuth.yaml")
	if err := os.WriteFile(path, []byte(fmt.Sprintf(`admin: { address: 127.0.0.1:0 }
shutdown: { drain_delay: 0s, grace: 2s }
log: { access_log: { output: "off" } }
listeners:
  - name: http
    address: 127.0.0.1:0
    routes:
      - path_prefix: /api
        pool: web
        rewrite: { strip_prefix: true }
        request_headers:
          remove: [X-Debug]
          set: { X-Env: prod }
          add: { X-Tag: from-proxy }
        response_headers:
          remove: [X-Internal-Version]
          set: { Cache-Control: "max-age=60" }
          add: { X-Served-By: azimuth }
      - path_prefix: /v1/
        pool: web
        rewrite: { replace_prefix: /v2/, host: backend.internal }
      - name: login
        path_prefix: /login
        pool: web
        rate_limit: { rate: 0.5, burst: 3 }
      - path_prefix: /keyed
        pool: web
        rate_limit: { rate: 0.5, burst: 2, key: "header:X-Api-Key" }
      - pool: web
pools:
  - name: web
    backends: [ { address: %s } ]
`, be)), 0o644); err != nil {
		t.Fatal(err)
	}
	_, admin, listener := overridesStart(t, path)
	base := "http://" + listener

	do := func(method, target string, hdr map[string]string) (*http.Response, seen) {
		t.Helper()
		req, _ := http.NewRequest(method, base+target, nil)
		req.Host = "shop.example.com"
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, target, err)
		}
		defer resp.Body.Close()
		var s seen
		data, _ := io.ReadAll(resp.Body)
		if resp.StatusCode == 200 {
			if err := json.Unmarshal(data, &s); err != nil {
				t.Fatalf("%s: %v (%s)", target, err, data)
			}
		}
		return resp, s
	}

	resp, s := do("GET", "/api/users?id=7", map[string]string{
		"X-Debug": "1", "X-Tag": "from-client", "X-Forwarded-For": "203.0.113.5",
		"Connection": "X-Hop", "X-Hop": "must go",
	})
	for _, c := range []struct{ what, got, want string }{
		{"path", s.Path, "/users"},
		{"host", s.Host, "shop.example.com"},
		{"X-Debug", s.Header.Get("X-Debug"), ""},
		{"X-Env", s.Header.Get("X-Env"), "prod"},
		{"X-Tag", strings.Join(s.Header.Values("X-Tag"), ","), "from-client,from-proxy"},
		{"X-Forwarded-For (the client's replaced: not a trusted proxy)", s.Header.Get("X-Forwarded-For"), "127.0.0.1"},
		{"X-Forwarded-Host", s.Header.Get("X-Forwarded-Host"), "shop.example.com"},
		{"X-Hop (named by Connection)", s.Header.Get("X-Hop"), ""},
		{"response X-Internal-Version", resp.Header.Get("X-Internal-Version"), ""},
		{"response Cache-Control", resp.Header.Get("Cache-Control"), "max-age=60"},
		{"response X-Served-By", resp.Header.Get("X-Served-By"), "azimuth"},
	} {
		if c.got != c.want {
			t.Errorf("/api: %s = %q, want %q", c.what, c.got, c.want)
		}
	}

	_, s = do("GET", "/v1/items/a%2Fb", nil)
	if s.Path != "/v2/items/a%2Fb" || s.Host != "backend.internal" || s.Header.Get("X-Forwarded-Host") != "shop.example.com" {
		t.Errorf("/v1: backend saw path %q host %q X-Forwarded-Host %q; want /v2/items/a%%2Fb, backend.internal, shop.example.com", s.Path, s.Host, s.Header.Get("X-Forwarded-Host"))
	}
	_, s = do("GET", "/other", map[string]string{"X-Debug": "1"})
	if s.Path != "/other" || s.Header.Get("X-Debug") != "1" || s.Header.Get("X-Env") != "" {
		t.Errorf("the default route took another route's rules: %+v", s)
	}

	// Three at once pass, the fourth is limited.
	for i := range 3 {
		if resp, _ := do("GET", "/login", nil); resp.StatusCode != 200 {
			t.Fatalf("login %d: %d, want 200 within the burst", i+1, resp.StatusCode)
		}
	}
	resp, _ = do("GET", "/login", nil)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "2" {
		t.Fatalf("login past the burst: %d, Retry-After %q; want 429 and 2 (0.5 a second)", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	// By header: each key has its own bucket.
	for i := range 2 {
		if resp, _ := do("GET", "/keyed", map[string]string{"X-Api-Key": "alice"}); resp.StatusCode != 200 {
			t.Fatalf("alice %d: %d", i+1, resp.StatusCode)
		}
	}
	if resp, _ := do("GET", "/keyed", map[string]string{"X-Api-Key": "alice"}); resp.StatusCode != 429 {
		t.Fatalf("alice past her burst: %d, want 429", resp.StatusCode)
	}
	if resp, _ := do("GET", "/keyed", map[string]string{"X-Api-Key": "bob"}); resp.StatusCode != 200 {
		t.Fatalf("bob, another key: %d, want 200", resp.StatusCode)
	}
	if got := reloadMetric(t, admin, `azimuth_rate_limited_total{listener="http",route="login"}`); got != 1 {
		t.Errorf("rate limited on login = %v, want 1", got)
	}
	if got := reloadMetric(t, admin, `azimuth_rate_limited_total{listener="http",route="*/keyed"}`); got != 1 {
		t.Errorf("rate limited on */keyed = %v, want 1", got)
	}

	// The bucket survives a reload that keeps the limit.
	data, _ := os.ReadFile(path)
	hash := reloadGetStatus(t, admin).Config.Hash
	reloadWrite(t, path, string(data)+"# touched\n")
	testwait.Until(t, 10*time.Second, "the reload", func() bool { return reloadGetStatus(t, admin).Config.Hash != hash })
	if resp, _ := do("GET", "/login", nil); resp.StatusCode != 429 {
		t.Errorf("login after a reload: %d, want still 429 (the bucket is kept)", resp.StatusCode)
	}
}
