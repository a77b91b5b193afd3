package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/instance"
	"github.com/azimuthproxy/azimuth/internal/testwait"
)

// kindsBackend serves on ln until the test ends: /healthz answers 200 and
// counts, anything else answers with what the backend saw of the request
// (its own name, the Host and X-Forwarded-For).
type kindsBackend struct {
	name   string
	checks atomic.Int64
}

func serveKinds(t *testing.T, ln net.Listener, name string) *kindsBackend {
	t.Helper()
	b := &kindsBackend{name: name}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			b.checks.Add(1)
			return
		}
		fmt.Fprintf(w, "%s host=%s xff=%s", b.name, r.Host, r.Header.Get("X-Forwarded-For"))
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return b
}

// kindsGet sends one request with host to the proxy's listener and
// returns the status and body.
func kindsGet(t *testing.T, listener, host, path string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+listener+path, nil)
	req.Host = host
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s %s: %v", host, path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// kindsPool finds a pool in the status.
func kindsPool(t *testing.T, st instance.Status, name string) instance.PoolStatus {
	t.Helper()
	for _, p := range st.Pools {
		if p.Name == name {
			return p
		}
	}
	t.Fatalf("no pool %s in /status", name)
	return instance.PoolStatus{}
}

// Backends of every kind through the real binary, on a listener bound to
// the IPv6 loopback: an IPv6 backend, a backend on a Unix socket and a
// backend written as a host name (localhost). Each takes requests with the
// client's Host (or the route's rewrite) and X-Forwarded-For naming the
// IPv6 client, passes its active checks, and shows in /status and
// /metrics under its address; the name's section says what it resolved to.
func TestBackendsOfEveryKind(t *testing.T) {
	v6ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Fatalf("IPv6 loopback ::1 is not available on this machine (%v); this test needs it", err)
	}
	v6 := serveKinds(t, v6ln, "v6")
	dir, err := os.MkdirTemp("", "az") // socket paths hold ~104 bytes: t.TempDir's can be longer
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "app.sock")
	unixLn, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	sockB := serveKinds(t, unixLn, "unix")
	namedLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	named := serveKinds(t, namedLn, "named")
	_, namedPort, _ := net.SplitHostPort(namedLn.Addr().String())

	path := filepath.Join(t.TempDir(), "azimuth.yaml")
	active := "    health: { active: { path: /healthz, interval: 200ms, timeout: 150ms, rise: 1, fall: 1 } }\n"
	config := fmt.Sprintf(`admin: { address: 127.0.0.1:0 }
listeners:
  - name: v6
    address: "[::1]:0"
    routes:
      - { host: v6.test, pool: v6 }
      - { host: unix.test, path_prefix: /rewritten/, pool: sock, rewrite: { host: app.internal } }
      - { host: unix.test, pool: sock }
      - { host: named.test, pool: named }
pools:
  - name: v6
    backends: [ { address: "%s" } ]
%s  - name: sock
    backends: [ { address: "unix:%s", zone: z1 } ]
%s  - name: named
    dns_refresh: 1s
    backends: [ { address: "localhost:%s", weight: 2 } ]
%s`, v6ln.Addr(), active, sock, active, namedPort, active)
	if err := os.WriteFile(path, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	p := start(t, path, "AZIMUTH_ZONE=")
	admin := p.waitLog(t, "admin listening", nil)["address"].(string)
	st := getStatusWith(t, admin, "")
	if len(st.Listeners) != 1 || !strings.HasPrefix(st.Listeners[0].Address, "[::1]:") {
		t.Fatalf("listeners %+v, want one on [::1]", st.Listeners)
	}
	listener := st.Listeners[0].Address
	sockAddr := "unix:" + sock
	namedAddr := "127.0.0.1:" + namedPort

	t.Run("requests", func(t *testing.T) {
		for _, tc := range []struct{ name, host, path, want string }{
			{"ipv6 backend", "v6.test", "/", "v6 host=v6.test xff=::1"},
			{"unix socket backend", "unix.test", "/", "unix host=unix.test xff=::1"},
			{"unix socket backend, host rewritten", "unix.test", "/rewritten/x", "unix host=app.internal xff=::1"},
			{"named backend", "named.test", "/", "named host=named.test xff=::1"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if code, body := kindsGet(t, listener, tc.host, tc.path); code != http.StatusOK || body != tc.want {
					t.Errorf("%d %q, want 200 %q", code, body, tc.want)
				}
			})
		}
	})

	t.Run("active checks", func(t *testing.T) {
		testwait.Until(t, 10*time.Second, "checks reaching every backend", func() bool {
			return v6.checks.Load() > 0 && sockB.checks.Load() > 0 && named.checks.Load() > 0
		})
		testwait.Until(t, 10*time.Second, "every backend up by its checks in /status", func() bool {
			st := getStatusWith(t, admin, "")
			for pool, addr := range map[string]string{"v6": v6ln.Addr().String(), "sock": sockAddr, "named": namedAddr} {
				bs := kindsPool(t, st, pool).Backends
				if len(bs) != 1 || bs[0].Address != addr || bs[0].State != "up" || bs[0].CheckSuccesses == 0 {
					return false
				}
			}
			return true
		})
	})

	t.Run("status and metrics", func(t *testing.T) {
		st := getStatusWith(t, admin, "")
		if b := kindsPool(t, st, "sock").Backends[0]; b.Zone != "z1" {
			t.Errorf("socket backend zone %q, want z1", b.Zone)
		}
		np := kindsPool(t, st, "named")
		if b := np.Backends[0]; b.Weight != 2 {
			t.Errorf("named backend weight %d, want the entry's 2", b.Weight)
		}
		if np.DNS == nil || len(np.DNS.Names) != 1 || np.DNS.Names[0].Name != "localhost" ||
			np.DNS.Names[0].ResolvedAt.IsZero() || len(np.DNS.Names[0].Addresses) == 0 {
			t.Errorf("named pool's dns status %+v, want localhost resolved", np.DNS)
		}
		if kindsPool(t, st, "v6").DNS != nil {
			t.Error("a pool of IP addresses has a dns section")
		}
		resp, err := http.Get("http://" + admin + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		metrics, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, addr := range []string{v6ln.Addr().String(), sockAddr, namedAddr} {
			want := fmt.Sprintf(`azimuth_backend_up{backend="%s",`, addr)
			if !strings.Contains(string(metrics), want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
	})
}
