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
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/instance"
	"github.com/azimuthproxy/azimuth/internal/consultest"
	"github.com/azimuthproxy/azimuth/internal/testwait"
	"github.com/hashicorp/consul/api"
)

// consulBackend is a real backend on a zone's loopback address that names
// itself and its zone in response headers.
func consulBackend(t *testing.T, ip, zone string) string {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend-Zone", zone)
		w.Header().Set("X-Backend", ln.Addr().String())
		_, _ = io.WriteString(w, "ok\n")
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// consulAdmin reads the admin and listener addresses of a started process.
func consulAdmin(t *testing.T, p *process) (admin, listener string) {
	t.Helper()
	admin = p.waitLog(t, "admin listening", nil)["address"].(string)
	var st struct {
		Listeners []struct{ Name, Address string } `json:"listeners"`
	}
	consulGetJSON(t, "http://"+admin+"/status", &st)
	if len(st.Listeners) == 0 {
		t.Fatal("no listener in /status")
	}
	return admin, st.Listeners[0].Address
}

func consulGetJSON(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("decoding %s: %v", url, err)
	}
	return resp.StatusCode
}

// consulPoolBackends returns the addresses in the pool's set per /status.
func consulPoolBackends(t *testing.T, admin string) map[string]string {
	var st struct {
		Pools []struct {
			Backends []struct{ Address, Zone string } `json:"backends"`
		} `json:"pools"`
	}
	consulGetJSON(t, "http://"+admin+"/status", &st)
	out := map[string]string{}
	for _, p := range st.Pools {
		for _, b := range p.Backends {
			out[b.Address] = b.Zone
		}
	}
	return out
}

// A pool fed by a real Consul agent: zones from service metadata, changes
// followed by blocking queries, and no failed request while instances
// leave, fail their checks, or the agent itself goes away and comes back.
func TestConsulPoolThroughTheProxy(t *testing.T) {
	agent := consultest.Start(t)
	c := agent.Client()
	type inst struct{ id, addr, zone string }
	var insts []inst
	for zi, z := range []string{"a", "b", "c"} {
		for i := 1; i <= 2; i++ {
			addr := consulBackend(t, fmt.Sprintf("127.0.%d.%d", zi+1, i+10), z)
			insts = append(insts, inst{id: fmt.Sprintf("api-%s-%d", z, i), addr: addr, zone: z})
		}
	}
	register := func(in inst) {
		t.Helper()
		host, port, _ := net.SplitHostPort(in.addr)
		var p int
		fmt.Sscan(port, &p)
		err := c.Agent().ServiceRegister(&api.AgentServiceRegistration{
			ID: in.id, Name: "api", Address: host, Port: p, Meta: map[string]string{"az": in.zone},
			Check: &api.AgentServiceCheck{CheckID: "ttl-" + in.id, TTL: "10m", Status: api.HealthPassing},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, in := range insts {
		register(in)
	}

	dir := t.TempDir()
	cfg := fmt.Sprintf(`zone: a
admin: { address: 127.0.0.1:0 }
shutdown: { drain_delay: 100ms, grace: 5s }
log: { access_log: { output: "off" } }
consul: { address: %s }
listeners:
  - name: http
    address: 127.0.0.1:0
    routes: [ { pool: api } ]
pools:
  - name: api
    timeouts: { connect: 500ms, per_try: 1s, request: 5s }
    consul: { service: api, zone_meta: az }
`, agent.Addr())
	path := filepath.Join(dir, "azimuth.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	p := start(t, path)
	admin, listener := consulAdmin(t, p)

	testwait.Until(t, 10*time.Second, "the pool to fill from consul", func() bool { return len(consulPoolBackends(t, admin)) == 6 })
	for addr, zone := range consulPoolBackends(t, admin) {
		for _, in := range insts {
			if in.addr == addr && in.zone != zone {
				t.Errorf("backend %s has zone %q, want %q from its metadata", addr, zone, in.zone)
			}
		}
	}
	var ready instance.Readiness
	if code := consulGetJSON(t, "http://"+admin+"/readyz", &ready); code != 200 {
		t.Fatalf("/readyz = %d %v", code, ready.Reasons)
	}

	// Traffic for the whole test; every request must succeed.
	var failures, total atomic.Int64
	zones := sync.Map{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 5 * time.Second}
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Get("http://" + listener + "/")
				total.Add(1)
				if err != nil {
					failures.Add(1)
					t.Logf("request failed: %v", err)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failures.Add(1)
					t.Logf("request answered %d", resp.StatusCode)
				}
				zones.Store(resp.Header.Get("X-Backend-Zone"), true)
				time.Sleep(2 * time.Millisecond) // pacing of the client loop
			}
		}()
	}
	var once sync.Once
	stopTraffic := func() {
		once.Do(func() {
			close(stop)
			wg.Wait()
			if failures.Load() != 0 {
				t.Errorf("%d of %d requests failed", failures.Load(), total.Load())
			}
			if total.Load() < 100 {
				t.Errorf("only %d requests were sent", total.Load())
			}
		})
	}
	defer stopTraffic()

	// Deregister one instance of the local zone under traffic.
	if err := c.Agent().ServiceDeregister(insts[0].id); err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, 5*time.Second, "the deregistered instance to leave", func() bool {
		_, ok := consulPoolBackends(t, admin)[insts[0].addr]
		return !ok
	})

	// A failing check takes the instance out within a second.
	failed := time.Now()
	if err := c.Agent().UpdateTTL("ttl-"+insts[1].id, "down", api.HealthCritical); err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, 5*time.Second, "the critical instance to leave", func() bool {
		_, ok := consulPoolBackends(t, admin)[insts[1].addr]
		return !ok
	})
	if took := time.Since(failed); took > time.Second {
		t.Errorf("critical instance left after %v, want within 1s", took)
	}
	// Zone a is now empty: traffic spills to b and c.
	testwait.Until(t, 5*time.Second, "traffic to reach zone b or c", func() bool {
		_, b := zones.Load("b")
		_, c := zones.Load("c")
		return b || c
	})

	// The agent goes away: the last set keeps serving.
	agent.Stop()
	testwait.Until(t, 10*time.Second, "the watcher to see consul down", func() bool {
		var st struct {
			Pools []struct {
				Consul struct {
					Synced    bool   `json:"synced"`
					LastError string `json:"last_error"`
				} `json:"consul"`
			} `json:"pools"`
		}
		consulGetJSON(t, "http://"+admin+"/status", &st)
		return len(st.Pools) == 1 && !st.Pools[0].Consul.Synced && st.Pools[0].Consul.LastError != ""
	})
	if n := len(consulPoolBackends(t, admin)); n != 4 {
		t.Fatalf("with consul down the pool has %d backends, want the last 4", n)
	}
	before := total.Load()
	testwait.Until(t, 5*time.Second, "traffic to go on with consul down", func() bool { return total.Load() > before+50 })
	// A -dev agent comes back with an empty catalog. An empty answer after
	// a full one is held, so the pool keeps its 4 backends and traffic
	// goes on; then the pool follows the registrations as they return.
	agent.Restart()
	testwait.Until(t, 10*time.Second, "the watcher to hold its last set against the empty agent", func() bool {
		var st struct {
			Pools []struct {
				Consul struct {
					Synced  bool `json:"synced"`
					Holding bool `json:"holding"`
				} `json:"consul"`
			} `json:"pools"`
		}
		consulGetJSON(t, "http://"+admin+"/status", &st)
		return len(st.Pools) == 1 && st.Pools[0].Consul.Synced && st.Pools[0].Consul.Holding
	})
	if n := len(consulPoolBackends(t, admin)); n != 4 {
		t.Fatalf("against an empty agent the pool has %d backends, want the last 4", n)
	}
	before = total.Load()
	testwait.Until(t, 5*time.Second, "traffic to go on against the empty agent", func() bool { return total.Load() > before+50 })
	for _, in := range insts {
		register(in)
	}
	testwait.Until(t, 10*time.Second, "the pool to resync after the agent restarted", func() bool {
		return len(consulPoolBackends(t, admin)) == 6
	})

	// An edit points the pool at a service with no instance (a typo): the
	// reload starts a new watcher, whose first answer is empty. The pool
	// keeps the 6 backends it serves, and traffic goes on. The edit undone,
	// the pool follows the service again.
	reloads := func() float64 { return reloadMetric(t, admin, reloadOK) }
	applied := reloads()
	reloadWrite(t, path, strings.Replace(cfg, "service: api,", "service: apii,", 1))
	testwait.Until(t, 10*time.Second, "the edit to the missing service to apply", func() bool { return reloads() == applied+1 })
	testwait.Until(t, 10*time.Second, "the new watcher to hold the pool's set against the missing service", func() bool {
		synced, holding := chaosConsulState(t, admin)
		return synced && holding
	})
	if n := len(consulPoolBackends(t, admin)); n != 6 {
		t.Fatalf("pointed at a service with no instance the pool has %d backends, want the 6 it served", n)
	}
	before = total.Load()
	testwait.Until(t, 5*time.Second, "traffic to go on against the missing service", func() bool { return total.Load() > before+50 })
	if err := c.Agent().ServiceDeregister(insts[5].id); err != nil {
		t.Fatal(err)
	}
	reloadWrite(t, path, cfg)
	testwait.Until(t, 10*time.Second, "the edit back to the service to apply", func() bool { return reloads() == applied+2 })
	testwait.Until(t, 10*time.Second, "the pool to follow the service again", func() bool {
		synced, holding := chaosConsulState(t, admin)
		return synced && !holding && len(consulPoolBackends(t, admin)) == 5
	})
	stopTraffic()
}
