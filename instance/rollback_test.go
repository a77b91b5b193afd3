package instance

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/internal/pki"
	"github.com/azimuthproxy/azimuth/internal/testwait"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// writeLeaf writes a self-signed certificate for a.test and its key as
// dir/a.pem and dir/a-key.pem.
func writeLeaf(t *testing.T, dir string) {
	t.Helper()
	leaf, err := pki.SelfSigned(pki.Leaf{CN: "a.test", DNS: []string{"a.test"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := leaf.WriteFiles(filepath.Join(dir, "a.pem"), filepath.Join(dir, "a-key.pem")); err != nil {
		t.Fatal(err)
	}
}

// takenAddr returns an address bound without SO_REUSEPORT until the test
// ends or release is called, so an instance cannot bind it.
func takenAddr(t *testing.T, ip string) (addr string, release func()) {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String(), func() { ln.Close() }
}

// A reload that fails at any step of its plan, the last included (after
// the generation was built), changes nothing and leaves nothing, whether
// the failure is injected (planFault) or real (the last listener's address
// is taken): the registry has the old pools, the request path the old
// generation, no goroutine of the new config runs, the TLS listener it
// bound is closed, no series of its new pool is on /metrics, and no health
// check of it was sent. The same file then applies.
func TestFailedPlanLeavesNothing(t *testing.T) {
	for _, tc := range []struct{ name, fault string }{
		{"injected at pools", "pools"},
		{"injected at listeners", "listeners"},
		{"injected at generation", "generation"},
		{"address taken", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var probes atomic.Int64
			probed := backend(t, "127.0.2.1", http.HandlerFunc(func(http.ResponseWriter, *http.Request) { probes.Add(1) }))
			a := newInstance(t)
			dir := t.TempDir()
			writeLeaf(t, dir)
			base := `zone: zone-a
admin: { address: 127.0.0.1:0 }
listeners:
  - name: web
    address: 127.0.0.1:0
    routes: [ { pool: web } ]
%spools:
  - name: web
    backends: [ { address: 127.0.1.1:1, zone: zone-a } ]
%s`
			good := parse(t, dir, "a.yaml", fmt.Sprintf(base, "", ""))
			if err := a.Apply(good); err != nil {
				t.Fatal(err)
			}
			gen := a.server.Current()
			// The baseline is taken once the running config's listener
			// serves: serve starts its goroutine without waiting for it.
			testwait.Until(t, 5*time.Second, "the running config's listener to serve", func() bool {
				return configGoroutines()["h1server.(*Server).Serve"] >= 1
			})
			before := configGoroutines()
			secure := freeAddr(t, "127.0.0.3")
			listeners := fmt.Sprintf("  - name: secure\n    address: %s\n"+
				"    tls: { certificates: [ { cert_file: a.pem, key_file: a-key.pem } ] }\n    routes: [ { pool: extra } ]\n", secure)
			release := func() {}
			if tc.fault == "" {
				var taken string
				taken, release = takenAddr(t, "127.0.0.8")
				listeners += fmt.Sprintf("  - name: taken\n    address: %s\n    routes: [ { pool: web } ]\n", taken)
			}
			next := parse(t, dir, "b.yaml", fmt.Sprintf(base, listeners,
				fmt.Sprintf("  - name: extra\n    health: { active: { path: /healthz, interval: 20ms, timeout: 10ms } }\n"+
					"    backends: [ { address: %s, zone: zone-b } ]\n", probed)))
			injected := errors.New("injected failure")
			a.planFault = func(step string) error {
				if step == tc.fault {
					return injected
				}
				return nil
			}
			if err := a.Apply(next); err == nil {
				t.Fatal("the reload succeeded despite its failing plan")
			}
			if a.server.Current() != gen || a.cfg() != good {
				t.Error("the failed reload replaced the running generation or config")
			}
			if p := a.registry.Lookup("extra"); p != nil {
				t.Error("the failed reload's pool is in the registry")
			}
			if st := a.Status(); len(st.Pools) != 1 || len(st.Listeners) != 1 {
				t.Errorf("status after the failed reload: pools %d, listeners %d; want 1 and 1", len(st.Pools), len(st.Listeners))
			}
			if !refused(secure) {
				t.Errorf("the TLS listener of the failed reload accepts on %s", secure)
			}
			testwait.Until(t, 5*time.Second, "no more goroutines than before the failed reload", func() bool {
				return noMore(configGoroutines(), before)
			})
			fams, err := a.reg.Gather()
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range fams {
				for _, m := range f.GetMetric() {
					for _, l := range m.GetLabel() {
						if l.GetName() == "pool" && l.GetValue() == "extra" {
							t.Errorf("series %s of the failed reload's pool", f.GetName())
						}
					}
				}
			}
			if n := probes.Load(); n != 0 {
				t.Errorf("%d health checks of the failed reload's pool", n)
			}

			a.planFault = nil
			release()
			if err := a.Apply(next); err != nil {
				t.Fatalf("the same file without the failure: %v", err)
			}
			// The count sees the goroutines it counts: the good reload's
			// checker, detector, TLS server and certificate watch (no
			// Consul watch here).
			testwait.Until(t, 5*time.Second, "the goroutines of the new config", func() bool {
				got := configGoroutines()
				for _, root := range configGoroutineRoots {
					if got[root] == 0 && !strings.HasPrefix(root, "discovery") {
						return false
					}
				}
				return true
			})
			testwait.Until(t, 5*time.Second, "a health check of the pool the good reload added", func() bool { return probes.Load() > 0 })
		})
	}
}

// A file that validates but cannot be applied (a new listener's address is
// taken) changes nothing: the listener it opened first is closed again,
// the running config serves on, /status and the reload metrics report the
// failure, and the same file applies once the address is free.
func TestFailedReloadKeepsServing(t *testing.T) {
	be := backend(t, "127.0.1.1", named("web"))
	dir := t.TempDir()
	path := filepath.Join(dir, "azimuth.yaml")
	base := fmt.Sprintf(`zone: zone-a
admin: { address: 127.0.0.1:0 }
listeners:
  - name: web
    address: 127.0.0.1:0
    routes: [ { pool: web } ]
%%spools:
  - name: web
    backends: [ { address: %s, zone: zone-a } ]
`, be)
	writeFile(t, path, fmt.Sprintf(base, ""))
	a := newInstance(t)
	if _, err := a.Reload(path); err != nil {
		t.Fatal(err)
	}
	web := "http://" + listenerAddr(t, a, "web") + "/"

	taken, release := takenAddr(t, "127.0.0.8")
	first := freeAddr(t, "127.0.0.7")
	writeFile(t, path, fmt.Sprintf(base, fmt.Sprintf(
		"  - name: first\n    address: %s\n    routes: [ { pool: web } ]\n"+
			"  - name: second\n    address: %s\n    routes: [ { pool: web } ]\n", first, taken)))
	if cfg, err := a.Reload(path); err == nil || cfg != nil {
		t.Fatalf("reload with %s taken: %v, %v; want an error", taken, cfg, err)
	}
	st := a.Status()
	if st.Config.LastReloadOK || !strings.Contains(st.Config.LastReloadErr, "second") {
		t.Errorf("status config = %+v; want the failed listener in the error", st.Config)
	}
	if len(st.Listeners) != 1 {
		t.Errorf("listeners after a failed reload: %+v, want only web", st.Listeners)
	}
	if !refused(first) {
		t.Errorf("the listener the failed reload opened still accepts on %s", first)
	}
	if got := testutil.ToFloat64(a.reloads.successful); got != 0 {
		t.Errorf("azimuth_config_last_reload_successful = %v after the failure, want 0", got)
	}
	if code, body := get(t, web); code != http.StatusOK || body != "web" {
		t.Errorf("the running config after the failed reload: %d %q", code, body)
	}

	release()
	if cfg, err := a.Reload(path); err != nil || cfg == nil {
		t.Fatalf("the same file once the address is free: %v", err)
	}
	if got := listenerAddr(t, a, "second"); got != taken {
		t.Errorf("second listener on %s, want %s", got, taken)
	}
	for _, tc := range []struct {
		series string
		got    float64
		want   float64
	}{
		{"reloads_total{success}", testutil.ToFloat64(a.reloads.total.WithLabelValues("success")), 2},
		{"reloads_total{failure}", testutil.ToFloat64(a.reloads.total.WithLabelValues("failure")), 1},
		{"last_reload_successful", testutil.ToFloat64(a.reloads.successful), 1},
	} {
		if tc.got != tc.want {
			t.Errorf("azimuth_config_%s = %v, want %v", tc.series, tc.got, tc.want)
		}
	}
	if code, body := get(t, "http://"+taken+"/"); code != http.StatusOK || body != "web" {
		t.Errorf("the listener the good reload added: %d %q", code, body)
	}
}

// The first plan failing (a later listener's address taken) leaves an
// instance with no config, no open socket (the listener it bound first,
// the admin listener) and nothing running; a good config then applies.
func TestFailedFirstPlanLeavesNothing(t *testing.T) {
	taken, release := takenAddr(t, "127.0.0.8")
	first, admin := freeAddr(t, "127.0.0.7"), freeAddr(t, "127.0.0.9")
	dir := t.TempDir()
	config := fmt.Sprintf(`admin: { address: %s }
listeners:
  - name: first
    address: %s
    routes: [ { pool: web } ]
  - name: second
    address: %s
    routes: [ { pool: web } ]
pools:
  - name: web
    health: { active: { path: /healthz, interval: 20ms, timeout: 10ms } }
    backends: [ { address: 127.0.1.1:1 } ]
`, admin, first, taken)
	before := configGoroutines()
	a := newInstance(t)
	if err := a.Apply(parse(t, dir, "a.yaml", config)); err == nil {
		t.Fatal("the first config applied with an address taken")
	}
	if r := a.Ready(); r.Ready || !strings.Contains(strings.Join(r.Reasons, ";"), "no config loaded") {
		t.Errorf("readiness after the failed first plan: %+v", r)
	}
	if a.AdminAddr() != "" {
		t.Errorf("admin address %q after the failed first plan", a.AdminAddr())
	}
	for _, addr := range []string{first, admin} {
		if !refused(addr) {
			t.Errorf("%s accepts after the failed first plan", addr)
		}
	}
	testwait.Until(t, 5*time.Second, "no goroutine of the failed config", func() bool {
		return noMore(configGoroutines(), before)
	})

	release()
	if err := a.Apply(parse(t, dir, "a.yaml", config)); err != nil {
		t.Fatalf("the config once the address is free: %v", err)
	}
	if a.AdminAddr() != admin {
		t.Errorf("admin on %q, want %s", a.AdminAddr(), admin)
	}
}
