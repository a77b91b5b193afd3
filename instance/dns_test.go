package instance

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/internal/testwait"
)

// dnsTable is a resolver whose answers a test changes: an IPv4 and an
// IPv6 address for one name, which this machine's /etc/hosts does not
// give.
type dnsTable struct {
	mu      sync.Mutex
	answers map[string][]net.IPAddr
	err     error
}

func (d *dnsTable) set(name string, ips ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []net.IPAddr
	for _, ip := range ips {
		out = append(out, net.IPAddr{IP: net.ParseIP(ip)})
	}
	d.answers[name], d.err = out, nil
}

func (d *dnsTable) fail(err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.err = err
}

func (d *dnsTable) LookupIPAddr(_ context.Context, host string) ([]net.IPAddr, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.err != nil {
		return nil, d.err
	}
	if ips, ok := d.answers[host]; ok {
		return ips, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// dualBackends serves name on 127.0.0.1 and ::1 on one port, as one
// backend behind a name with an A and an AAAA record would, and returns
// the port. It fails the test if ::1 cannot be bound: the IPv6 half is
// the point.
func dualBackends(t *testing.T) string {
	t.Helper()
	for range 20 {
		ln4, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		_, port, _ := net.SplitHostPort(ln4.Addr().String())
		ln6, err := net.Listen("tcp", "[::1]:"+port)
		if err != nil {
			ln4.Close()
			if _, err := net.Listen("tcp", "[::1]:0"); err != nil {
				t.Fatalf("IPv6 loopback ::1 is not available on this machine (%v); this test needs it", err)
			}
			continue // the port is taken on ::1: another one
		}
		for _, ln := range []net.Listener{ln4, ln6} {
			srv := &http.Server{Handler: named(ln.Addr().String()), ReadHeaderTimeout: 5 * time.Second}
			go func() { _ = srv.Serve(ln) }()
			t.Cleanup(func() { _ = srv.Close() })
		}
		return port
	}
	t.Fatal("no port free on both 127.0.0.1 and ::1")
	return ""
}

// dnsWatchers counts the goroutines running a DNS watcher.
func dnsWatchers() int {
	buf := make([]byte, 4<<20)
	return strings.Count(string(buf[:runtime.Stack(buf, true)]), "discovery.(*DNSWatcher).Run(")
}

// A backend written as a host name is one backend per address it
// resolves to, IPv4 and IPv6, each with the entry's zone, weight and
// max_conns, each taking requests; /status shows them and the name. The
// name is resolved again every dns_refresh: a failing resolver keeps the
// set, a new answer changes it, a reload keeps the addresses even while
// the resolver fails, and a reload to IP addresses stops the watcher.
func TestNamedBackendsExpandAndFollowDNS(t *testing.T) {
	port := dualBackends(t)
	v4, v6 := "127.0.0.1:"+port, "[::1]:"+port
	res := &dnsTable{answers: map[string][]net.IPAddr{}}
	res.set("both.test", "127.0.0.1", "::1")
	before := dnsWatchers()
	a := newInstanceWith(t, Options{Resolver: res})
	path := filepath.Join(t.TempDir(), "azimuth.yaml")
	config := func(backends string) string {
		return fmt.Sprintf(`zone: a
admin: { address: 127.0.0.1:0 }
listeners:
  - name: web
    address: 127.0.0.1:0
    routes: [ { pool: web } ]
pools:
  - name: web
    dns_refresh: 1s
    backends: [ %s ]
`, backends)
	}
	reload := func(backends string) {
		t.Helper()
		writeFile(t, path, config(backends))
		if c, err := a.Reload(path); err != nil || c == nil {
			t.Fatal(err)
		}
	}
	webPool := func() PoolStatus {
		for _, p := range a.Status().Pools {
			if p.Name == "web" {
				return p
			}
		}
		t.Fatal("no pool web in the status")
		return PoolStatus{}
	}
	addrs := func() []string {
		var out []string
		for _, b := range webPool().Backends {
			out = append(out, b.Address)
		}
		slices.Sort(out)
		return out
	}

	reload("{ address: 'both.test:" + port + "', zone: a, weight: 2, max_conns: 5 }")
	if got := addrs(); !slices.Equal(got, []string{v4, v6}) {
		t.Fatalf("backends %v right after the first commit, want %v", got, []string{v4, v6})
	}
	for _, b := range webPool().Backends {
		if b.Zone != "a" || b.Weight != 2 || b.MaxConns != 5 {
			t.Errorf("backend %s: zone %q weight %d max_conns %d, want the entry's a, 2, 5", b.Address, b.Zone, b.Weight, b.MaxConns)
		}
	}
	ds := webPool().DNS
	if ds == nil || len(ds.Names) != 1 || ds.Names[0].Name != "both.test" || ds.Names[0].ResolvedAt.IsZero() ||
		!slices.Equal(ds.Names[0].Addresses, []string{"127.0.0.1", "::1"}) {
		t.Fatalf("dns status %+v", ds)
	}
	url := "http://" + listenerAddr(t, a, "web") + "/"
	seen := map[string]bool{}
	testwait.Until(t, 10*time.Second, "both addresses of the name answering", func() bool {
		if code, body := get(t, url); code == http.StatusOK {
			seen[body] = true
		}
		return seen[v4] && seen[v6]
	})

	res.fail(errors.New("server misbehaving"))
	testwait.Until(t, 10*time.Second, "the failed lookup in the status", func() bool {
		ds := webPool().DNS
		return ds != nil && strings.Contains(ds.Names[0].Error, "server misbehaving")
	})
	if got := addrs(); !slices.Equal(got, []string{v4, v6}) {
		t.Fatalf("backends %v while the name fails, want the last set %v", got, []string{v4, v6})
	}

	// A reload while the name fails: the new watcher starts from the
	// old one's addresses.
	reload("{ address: 'both.test:" + port + "', zone: a, weight: 3 }")
	if got := addrs(); !slices.Equal(got, []string{v4, v6}) {
		t.Fatalf("backends %v after a reload while the name fails, want %v", got, []string{v4, v6})
	}
	if w := webPool().Backends[0].Weight; w != 3 {
		t.Errorf("weight %d after the reload, want 3", w)
	}

	res.set("both.test", "::1")
	testwait.Until(t, 10*time.Second, "the set following the new answer", func() bool {
		return slices.Equal(addrs(), []string{v6})
	})
	if n := dnsWatchers() - before; n != 1 {
		t.Errorf("%d DNS watchers run after two reloads, want 1", n)
	}

	reload("{ address: '" + v4 + "', zone: a }")
	if got := addrs(); !slices.Equal(got, []string{v4}) {
		t.Fatalf("backends %v after the reload to an IP address, want %v", got, []string{v4})
	}
	if webPool().DNS != nil {
		t.Error("the dns status stays after the names left the pool")
	}
	testwait.Until(t, 5*time.Second, "the DNS watcher stopping", func() bool { return dnsWatchers() == before })
}

// A name that has never resolved gives no backend; IP addresses beside it
// serve, and the pool gets the name's backends once it resolves.
func TestNamedBackendNeverResolved(t *testing.T) {
	port := dualBackends(t)
	res := &dnsTable{answers: map[string][]net.IPAddr{}}
	a := newInstanceWith(t, Options{Resolver: res})
	cfg := parse(t, t.TempDir(), "azimuth.yaml", fmt.Sprintf(`admin: { address: 127.0.0.1:0 }
listeners:
  - name: web
    address: 127.0.0.1:0
    routes: [ { pool: web } ]
pools:
  - name: web
    dns_refresh: 1s
    backends: [ { address: 'later.test:%s' }, { address: '127.0.0.1:%s' } ]
`, port, port))
	if err := a.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	backends := func() []string {
		var out []string
		for _, b := range a.Status().Pools[0].Backends {
			out = append(out, b.Address)
		}
		slices.Sort(out)
		return out
	}
	if got := backends(); !slices.Equal(got, []string{"127.0.0.1:" + port}) {
		t.Fatalf("backends %v, want only the IP address while the name does not resolve", got)
	}
	if code, _ := get(t, "http://"+listenerAddr(t, a, "web")+"/"); code != http.StatusOK {
		t.Errorf("status %d through the IP address backend, want 200", code)
	}
	res.set("later.test", "::1")
	testwait.Until(t, 10*time.Second, "the name's backend joining", func() bool {
		return slices.Equal(backends(), []string{"127.0.0.1:" + port, "[::1]:" + port})
	})
}
