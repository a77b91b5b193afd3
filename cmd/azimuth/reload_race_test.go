package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/configs"
	"github.com/azimuthproxy/azimuth/internal/testwait"
)

// Reading the status, readiness and metrics while reloads apply is free of
// data races: the app runs in this process under the race detector, a
// reload changes the proxy's zone, pools and their health settings, and
// readers run the whole time.
func TestStatusWhileReloading(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, err := newApp(ctx, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	config := func(i int) *configs.Config {
		zone := []string{"zone-a", "zone-b"}[i%2]
		extra := ""
		if i%3 == 0 {
			extra = "  - name: extra\n    health: { active: { path: /healthz, interval: 1s } }\n    backends: [ { address: 127.0.2.1:1, zone: zone-b } ]\n"
		}
		c, err := configs.Parse("race.yaml", []byte(fmt.Sprintf(`zone: %s
admin: { address: 127.0.0.1:0 }
log: { access_log: { output: "off" } }
listeners:
  - name: web
    address: %s
    routes: [ { pool: web } ]
pools:
  - name: web
    health: { passive: { consecutive_failures: %d } }
    backends: [ { address: 127.0.1.1:1, zone: zone-a }, { address: 127.0.2.2:1, zone: zone-b } ]
%s`, zone, addr, 3+i%4, extra)))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if err := a.apply(config(0)); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for range 3 {
		readers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				_ = a.status()
				_ = a.ready()
				if _, err := a.reg.Gather(); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	for i := 1; i <= 60; i++ {
		if err := a.apply(config(i)); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
	}
	close(stop)
	readers.Wait()
	if st := a.status(); st.Zone != "zone-a" && st.Zone != "zone-b" {
		t.Errorf("zone %q after the reloads", st.Zone)
	}
	a.mu.Lock()
	for _, rt := range a.pools {
		rt.stop()
	}
	for _, s := range a.slots {
		a.retireSlot(s, nil)
	}
	a.mu.Unlock()
	a.bg.Wait()
}

// configGoroutineRoots are the functions a config's goroutines run: a
// pool's health checks and outlier detection, its Consul watch, a
// listener's servers and its certificate watch.
var configGoroutineRoots = []string{
	"health.(*Checker).Run", "health.(*Detector).Run", "discovery.(*Watcher).Run",
	"h1server.(*Server).Serve", "azimuth/tls.(*Server).Serve", "azimuth/tls.(*Source).Run",
}

// configGoroutines counts the goroutines running each of
// configGoroutineRoots.
func configGoroutines() map[string]int {
	buf := make([]byte, 4<<20)
	stacks := string(buf[:runtime.Stack(buf, true)])
	out := map[string]int{}
	for _, root := range configGoroutineRoots {
		out[root] = strings.Count(stacks, root+"(")
	}
	return out
}

// noMore reports whether now has no more goroutines of any root than
// before (goroutines of an earlier test may still be ending).
func noMore(now, before map[string]int) bool {
	for root, n := range now {
		if n > before[root] {
			return false
		}
	}
	return true
}

// A reload that fails at any step of its plan, the last included (after
// the generation was built), changes nothing and leaves nothing: the
// registry has the old pools, the request path the old generation, no
// goroutine of the new config runs, no series of its new pool is on
// /metrics, and no health check of it was sent.
func TestReloadFailingAtEveryStepLeavesNothing(t *testing.T) {
	for _, step := range []string{"pools", "listeners", "generation"} {
		t.Run(step, func(t *testing.T) {
			var probes atomic.Int64
			probed := obsBackend(t, "127.0.2.1", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				probes.Add(1)
			}))
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			a, err := newApp(ctx, slog.New(slog.DiscardHandler), nil)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			tlsproxyWriteLeaf(t, tlsproxyNewCA(t, "edge CA"), dir)
			base := `zone: zone-a
admin: { address: 127.0.0.1:0 }
log: { access_log: { output: "off" } }
listeners:
  - name: web
    address: 127.0.0.1:0
    routes: [ { pool: web } ]
%spools:
  - name: web
    backends: [ { address: 127.0.1.1:1, zone: zone-a } ]
%s`
			good, err := configs.Parse(filepath.Join(dir, "a.yaml"), []byte(fmt.Sprintf(base, "", "")))
			if err != nil {
				t.Fatal(err)
			}
			if err := a.apply(good); err != nil {
				t.Fatal(err)
			}
			gen := a.server.Current()
			// The baseline is taken once the running config's listener
			// serves: serve starts its goroutine without waiting for it.
			testwait.Until(t, 5*time.Second, "the running config's listener to serve", func() bool {
				return configGoroutines()["h1server.(*Server).Serve"] >= 1
			})
			before := configGoroutines()
			next, err := configs.Parse(filepath.Join(dir, "b.yaml"), []byte(fmt.Sprintf(base,
				"  - name: secure\n    address: 127.0.0.3:0\n    tls: { certificates: [ { cert_file: a.pem, key_file: a-key.pem } ] }\n    routes: [ { pool: extra } ]\n",
				fmt.Sprintf("  - name: extra\n    health: { active: { path: /healthz, interval: 20ms, timeout: 10ms } }\n"+
					"    backends: [ { address: %s, zone: zone-b } ]\n", probed.addr))))
			if err != nil {
				t.Fatal(err)
			}
			a.planFault = func(s string) error {
				if s == step {
					return fmt.Errorf("injected failure at %s", s)
				}
				return nil
			}
			if err := a.apply(next); err == nil {
				t.Fatal("the reload succeeded despite the failure injected in its plan")
			}
			a.bg.Wait() // the listener it opened is retired
			if a.server.Current() != gen || a.cfg() != good {
				t.Error("the failed reload replaced the running generation or config")
			}
			if p := a.registry.Lookup("extra"); p != nil {
				t.Error("the failed reload's pool is in the registry")
			}
			if st := a.status(); len(st.Pools) != 1 || len(st.Listen) != 1 {
				t.Errorf("status after the failed reload: pools %d, listeners %d; want 1 and 1", len(st.Pools), len(st.Listen))
			}
			now := configGoroutines()
			for end := time.Now().Add(5 * time.Second); !noMore(now, before) && time.Now().Before(end); now = configGoroutines() {
				time.Sleep(20 * time.Millisecond) // the pace of the polls
			}
			if !noMore(now, before) {
				t.Errorf("goroutines of the failed reload's config run: %v, before it %v", now, before)
			}
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
			if err := a.apply(next); err != nil {
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
			a.mu.Lock()
			for _, rt := range a.pools {
				rt.stop()
			}
			for _, s := range a.slots {
				a.retireSlot(s, nil)
			}
			a.mu.Unlock()
			a.bg.Wait()
		})
	}
}
