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
// contract: one listener (plain, or TLS with optional HTTP/3), admin on
// admin, and one pool "app" with the given backends. The pool carries only
// the keys the scenario sets (see poolKeys): with none, it is a name and
// backends, exactly what a new user writes, and the proxy's defaults are
// what runs. It is written by hand, not through the proxy's config types,
// because the load tester must not import the proxy.
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
	p("pools:\n  - name: app\n")
	for _, line := range poolKeys(a) {
		p("%s\n", line)
	}
	p("    backends:\n")
	for _, e := range backends {
		p("      - { address: %s, zone: %s }\n", listen2(e.Address), quote(e.Zone))
	}
	return b.String()
}

// PoolSection returns the pools part of a config ConfigYAML wrote: what a
// report shows as "what azimuth ran with".
func PoolSection(config string) string {
	if i := strings.Index(config, "\npools:\n"); i >= 0 {
		return config[i+1:]
	}
	return config
}

// DefaultsOnly reports whether the scenario sets no pool key, so azimuth
// runs with a pool of only a name and backends.
func (a Azimuth) DefaultsOnly() bool { return len(poolKeys(a)) == 0 }

// poolKeys returns the pool's lines for the keys a sets, indented under
// "  - name: app", in the config contract's order.
func poolKeys(a Azimuth) []string {
	var lines []string
	add := func(depth int, format string, args ...any) {
		lines = append(lines, strings.Repeat("  ", depth)+fmt.Sprintf(format, args...))
	}
	if a.ConnectTimeout != nil || a.PerTryTimeout != nil || a.RequestTimeout != nil {
		add(2, "timeouts:")
		if a.ConnectTimeout != nil {
			add(3, "connect: %s", d(*a.ConnectTimeout))
		}
		if a.PerTryTimeout != nil {
			add(3, "per_try: %s", quote(*a.PerTryTimeout))
		}
		if a.RequestTimeout != nil {
			add(3, "request: %s", d(*a.RequestTimeout))
		}
	}
	budget := a.BudgetPercent != nil || a.BudgetMinPerSecond != nil || a.BudgetWindow != nil
	if a.Attempts != nil || a.RetryOn != nil || a.IdempotencyHeader != nil || budget {
		add(2, "retry:")
		if a.Attempts != nil {
			add(3, "attempts: %d", *a.Attempts)
		}
		if a.RetryOn != nil {
			on := make([]string, len(a.RetryOn))
			for i, c := range a.RetryOn {
				on[i] = quote(c)
			}
			add(3, "on: [%s]", strings.Join(on, ", "))
		}
		if a.IdempotencyHeader != nil {
			add(3, "idempotency_header: %s", quote(*a.IdempotencyHeader))
		}
		if budget {
			add(3, "budget:")
			if a.BudgetPercent != nil {
				add(4, "percent: %d", *a.BudgetPercent)
			}
			if a.BudgetMinPerSecond != nil {
				add(4, "min_per_second: %s", f(*a.BudgetMinPerSecond))
			}
			if a.BudgetWindow != nil {
				add(4, "window: %s", d(*a.BudgetWindow))
			}
		}
	}
	if a.SpillBelow != nil || a.PanicBelow != nil {
		add(2, "zones:")
		if a.SpillBelow != nil {
			add(3, "spill_below: %s", f(*a.SpillBelow))
		}
		if a.PanicBelow != nil {
			add(3, "panic_below: %s", f(*a.PanicBelow))
		}
	}
	passive := a.ConsecutiveFailures != nil || a.Ejection != nil || a.MaxEjectedPercent != nil
	if a.hasActiveHealth() || passive {
		add(2, "health:")
	}
	if a.hasActiveHealth() {
		add(3, "active:")
		path := "/healthz" // the fleet's health path
		if a.HealthPath != nil {
			path = *a.HealthPath
		}
		add(4, "path: %s", quote(path))
		if a.HealthInterval != nil {
			add(4, "interval: %s", d(*a.HealthInterval))
		}
		if a.HealthTimeout != nil {
			add(4, "timeout: %s", d(*a.HealthTimeout))
		}
		if a.Rise != nil {
			add(4, "rise: %d", *a.Rise)
		}
		if a.Fall != nil {
			add(4, "fall: %d", *a.Fall)
		}
	}
	if passive {
		add(3, "passive:")
		if a.ConsecutiveFailures != nil {
			add(4, "consecutive_failures: %d", *a.ConsecutiveFailures)
		}
		if a.Ejection != nil {
			add(4, "ejection: %s", d(*a.Ejection))
		}
		if a.MaxEjectedPercent != nil {
			add(4, "max_ejected_percent: %d", *a.MaxEjectedPercent)
		}
	}
	return lines
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

// freeAddrs finds n distinct free TCP ports on 127.0.0.1: each stays bound
// until all are found, so two picks never return the same port. They are
// released before azimuth binds them; on a busy machine another process
// could take one in between, which would show as azimuth failing to start.
func freeAddrs(n int) ([]string, error) {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			_ = ln.Close()
		}
	}()
	var addrs []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("finding a free port: %w", err)
		}
		lns = append(lns, ln)
		addrs = append(addrs, ln.Addr().String())
	}
	return addrs, nil
}
