package scenario

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/azimuthproxy/azimuth/loadtest/fleet"
)

// Endpoint is a backend as the azimuth config names it.
type Endpoint struct {
	Address, Zone string
}

// Endpoints lists a fleet's backends for ConfigYAML.
func Endpoints(f *fleet.Fleet) []Endpoint {
	var out []Endpoint
	for _, b := range f.Backends() {
		out = append(out, Endpoint{Address: b.Addr, Zone: b.Zone})
	}
	return out
}

// Listener is the proxy listener the load goes through; with CertFile set
// it terminates TLS, and HTTP3 adds QUIC on the same port.
type Listener struct {
	Address           string
	CertFile, KeyFile string
	HTTP3             bool
}

// ConfigYAML writes the azimuth config for a scenario, following the config
// contract: one listener (plain, or TLS with optional HTTP/3), admin on admin, one pool "app"
// with the given backends and the scenario's retry and health settings.
// It is written by hand, not through the proxy's config types, because the
// load tester must not import the proxy.
func ConfigYAML(a Azimuth, l Listener, admin, accessLog string, backends []Endpoint) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("# Written by azload for one scenario run.\n")
	p("zone: %s\n", quote(a.Zone))
	p("admin:\n  address: %s\n", listen2(admin))
	p("log:\n  level: warn\n  access_log:\n    output: %s\n", quote(accessLog))
	p("shutdown:\n  drain_delay: 100ms\n  grace: 5s\n")
	p("listeners:\n  - name: load\n    address: %s\n", listen2(l.Address))
	if l.CertFile != "" {
		p("    tls:\n      certificates:\n        - cert_file: %s\n          key_file: %s\n      http3: %t\n", quote(l.CertFile), quote(l.KeyFile), l.HTTP3)
	}
	p("    routes:\n      - pool: app\n")
	p("pools:\n  - name: app\n    balance: least_conn\n")
	p("    timeouts: { connect: %s, per_try: %s, request: %s }\n", d(a.ConnectTimeout), d(a.PerTryTimeout), d(a.RequestTimeout))
	p("    retry:\n      attempts: %d\n      on: [", a.Attempts)
	for i, c := range a.RetryOn {
		if i > 0 {
			p(", ")
		}
		p("%s", quote(c))
	}
	p("]\n      idempotency_header: Idempotency-Key\n      max_body: 64KiB\n")
	p("      budget: { percent: %d, min_concurrency: %d }\n", a.BudgetPercent, a.BudgetMin)
	p("    zones: { spill_below: %s, panic_below: %s }\n", f(a.SpillBelow), f(a.PanicBelow))
	p("    health:\n")
	p("      active: { path: /healthz, interval: %s, timeout: %s, rise: %d, fall: %d }\n", d(a.HealthInterval), d(a.HealthTimeout), a.Rise, a.Fall)
	p("      passive: { consecutive_failures: %d, ejection: %s, max_ejected_percent: %d }\n", a.ConsecutiveFailure, d(a.Ejection), a.MaxEjectedPercent)
	p("    backends:\n")
	for _, e := range backends {
		p("      - { address: %s, zone: %s }\n", listen2(e.Address), quote(e.Zone))
	}
	return b.String()
}

func d(t time.Duration) string { return quote(t.String()) }
func f(x float64) string       { return strconv.FormatFloat(x, 'f', -1, 64) }
func quote(s string) string    { return strconv.Quote(s) }

// listen2 quotes a host:port so YAML never reads it as something else.
func listen2(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return quote(addr)
	}
	return quote(net.JoinHostPort(host, port))
}

// freeAddr finds a free TCP port on 127.0.0.1. The port is released before
// azimuth binds it; on a busy machine another process could take it in
// between, which would show as azimuth failing to start.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("finding a free port: %w", err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		return "", fmt.Errorf("releasing port %s: %w", addr, err)
	}
	return addr, nil
}
