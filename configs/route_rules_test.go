package configs

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestRouteRulesConfig(t *testing.T) {
	t.Setenv(EnvZone, "")
	name := filepath.Join(t.TempDir(), "azimuth.yaml")
	route := func(extra string) string {
		return `listeners:
  - name: http
    address: 127.0.0.1:8080
    routes:
      - pool: web
        path_prefix: /api
` + extra + okPools
	}
	for _, tc := range []struct {
		name, yaml, path, msg string
	}{
		{"strip and replace", route("        rewrite: { strip_prefix: true, replace_prefix: /v2 } #<\n"), "listeners[0].routes[0].rewrite.replace_prefix", "not with strip_prefix"},
		{"replace without slash", route("        rewrite: { replace_prefix: v2 } #<\n"), "listeners[0].routes[0].rewrite.replace_prefix", "must start with /"},
		{"bad host", route("        rewrite: { host: \"a b\" } #<\n"), "listeners[0].routes[0].rewrite.host", "not a valid Host"},
		{"forwarding field", route("        request_headers:\n          set: { X-Forwarded-For: 1.2.3.4 } #<\n"), "listeners[0].routes[0].request_headers.set.X-Forwarded-For", "forwarding field"},
		{"hop-by-hop field", route("        request_headers:\n          remove: [connection] #<\n"), "listeners[0].routes[0].request_headers.remove[0]", "hop-by-hop"},
		{"framing field", route("        response_headers:\n          set: { Content-Length: \"5\" } #<\n"), "listeners[0].routes[0].response_headers.set.Content-Length", "set by the proxy"},
		{"own field", route("        request_headers:\n          add: { Azimuth-Region-Hop: \"1\" } #<\n"), "listeners[0].routes[0].request_headers.add.Azimuth-Region-Hop", "the proxy's own"},
		{"bad name", route("        response_headers:\n          add: { \"X Bad\": v } #<\n"), "listeners[0].routes[0].response_headers.add.X Bad", "not a header field name"},
		{"bad value", route("        response_headers:\n          set: { X-A: \"a\\nb\" } #<\n"), "listeners[0].routes[0].response_headers.set.X-A", "not a valid field value"},
		{"duplicate name", route("        request_headers:\n          set: { X-A: a, X-A: b } #<\n"), "listeners[0].routes[0].request_headers.set.X-A", "duplicate key"},
		{"rate zero", route("        rate_limit: { rate: 0 } #<\n"), "listeners[0].routes[0].rate_limit.rate", "above 0"},
		{"burst zero", route("        rate_limit: { rate: 5, burst: 0 } #<\n"), "listeners[0].routes[0].rate_limit.burst", "at least 1"},
		{"unknown key", route("        rate_limit: { rate: 5, key: cookie } #<\n"), "listeners[0].routes[0].rate_limit.key", "want client_address, route or header:NAME"},
		{"bad header key", route("        rate_limit: { rate: 5, key: \"header:\" } #<\n"), "listeners[0].routes[0].rate_limit.key", "want client_address"},
		{"bad route name", route("        name: \"my route\" #<\n"), "listeners[0].routes[0].name", "use letters"},
	} {
		t.Run(tc.name, func(t *testing.T) { wantProblem(t, name, tc.yaml, tc.path, tc.msg) })
	}
	t.Run("a field set twice in two cases", func(t *testing.T) {
		_, err := Parse(name, []byte(route("        request_headers:\n          set: { X-A: a, x-a: b }\n")))
		if err == nil || !strings.Contains(err.Error(), "named again") {
			t.Fatalf("Parse: %v, want a problem naming the field twice", err)
		}
	})
	t.Run("two routes of one name", func(t *testing.T) {
		wantProblem(t, name, `listeners:
  - name: http
    address: 127.0.0.1:8080
    routes:
      - { pool: web, path_prefix: /a, name: api }
      - { pool: web, path_prefix: /b, name: api } #<
`+okPools, "listeners[0].routes[1].name", "is also routes[0]'s name")
	})
	t.Run("rewrite without path_prefix", func(t *testing.T) {
		wantProblem(t, name, `listeners:
  - name: http
    address: 127.0.0.1:8080
    routes:
      - pool: web
        rewrite: { strip_prefix: true } #<
`+okPools, "listeners[0].routes[0].rewrite", "needs the route's path_prefix")
	})

	c := mustParse(t, "ok.yaml", route("        rate_limit: { rate: 2.5 }\n        request_headers: { set: { X-Env: prod } }\n"))
	r := c.Listeners[0].Routes[0]
	if l := r.RateLimit; l.Burst != 3 || l.Key != RateKeyClient || l.MaxKeys != DefaultRateMaxKeys {
		t.Errorf("rate limit defaults %+v, want burst 3, client_address, %d keys", *l, DefaultRateMaxKeys)
	}
	if r.RequestHeaders.Set["X-Env"] != "prod" || r.RouteName() != "*/api" {
		t.Errorf("route %+v name %q", r.RequestHeaders, r.RouteName())
	}
}

func TestProxyProtocolConfig(t *testing.T) {
	t.Setenv(EnvZone, "")
	name := filepath.Join(t.TempDir(), "azimuth.yaml")
	wantProblem(t, name, `listeners:
  - name: http
    address: 127.0.0.1:8080
    proxy_protocol: true #<
    routes: [ { pool: web } ]
`+okPools, "listeners[0].proxy_protocol", "needs trusted_proxies")
	wantProblem(t, name, okListeners+okPools+"    send_proxy_protocol: v3 #<\n", "pools[0].send_proxy_protocol", "v1")
	wantProblem(t, name, okListeners+okPools+"    protocol: h2c\n    send_proxy_protocol: v2 #<\n", "pools[0].send_proxy_protocol", "only with protocol http1")
}
