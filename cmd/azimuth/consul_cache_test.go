package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/instance"
	"github.com/azimuthproxy/azimuth/internal/consultest"
	"github.com/azimuthproxy/azimuth/internal/testwait"
	"github.com/hashicorp/consul/api"
)

// A proxy restarted while its Consul agent is stopped serves the backend
// set cached by its previous run, says so in /status (from_cache) and is
// ready; once the agent answers again it takes the agent's set.
func TestConsulCacheAcrossRestart(t *testing.T) {
	agent := consultest.Start(t)
	register := func(id, addr string) {
		t.Helper()
		host, port, _ := net.SplitHostPort(addr)
		p, _ := strconv.Atoi(port)
		if err := agent.Client().Agent().ServiceRegister(&api.AgentServiceRegistration{
			ID: id, Name: "api", Address: host, Port: p, Meta: map[string]string{"az": "a"},
			Check: &api.AgentServiceCheck{TTL: "10m", Status: api.HealthPassing},
		}); err != nil {
			t.Fatal(err)
		}
	}
	first := consulBackend(t, "127.0.1.21", "a")
	register("api-1", first)

	dir := t.TempDir()
	cache := filepath.Join(dir, "state")
	path := filepath.Join(dir, "azimuth.yaml")
	if err := os.WriteFile(path, []byte(fmt.Sprintf(`zone: a
admin: { address: 127.0.0.1:0 }
shutdown: { drain_delay: 0s, grace: 2s }
log: { access_log: { output: "off" } }
consul: { address: %s, cache_dir: %s }
listeners:
  - name: http
    address: 127.0.0.1:0
    routes: [ { pool: api } ]
pools:
  - name: api
    consul: { service: api, zone_meta: az }
`, agent.Addr(), cache)), 0o644); err != nil {
		t.Fatal(err)
	}
	type consulState struct {
		Synced    bool      `json:"synced"`
		FromCache bool      `json:"from_cache"`
		CachedAt  time.Time `json:"cached_at"`
	}
	poolConsul := func(admin string) consulState {
		var st struct {
			Pools []struct {
				Consul *consulState `json:"consul"`
			} `json:"pools"`
		}
		consulGetJSON(t, "http://"+admin+"/status", &st)
		if len(st.Pools) != 1 || st.Pools[0].Consul == nil {
			t.Fatalf("/status has no consul state: %+v", st)
		}
		return *st.Pools[0].Consul
	}
	getVia := func(listener string) (int, string) {
		resp, err := http.Get("http://" + listener + "/")
		if err != nil {
			t.Fatalf("GET through the proxy: %v", err)
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, resp.Header.Get("X-Backend")
	}

	p := start(t, path)
	admin, listener := consulAdmin(t, p)
	testwait.Until(t, 10*time.Second, "the pool to fill from consul", func() bool { return len(consulPoolBackends(t, admin)) == 1 })
	if code, be := getVia(listener); code != 200 || be != first {
		t.Fatalf("through the proxy with consul up: %d from %q", code, be)
	}
	if _, err := os.Stat(filepath.Join(cache, "consul-api.json")); err != nil {
		t.Fatalf("no cache file after consul's answer: %v", err)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.exitCode(t); code != 0 {
		t.Fatalf("exit %d", code)
	}

	agent.Stop()
	p = start(t, path)
	admin, listener = consulAdmin(t, p)
	if st := poolConsul(admin); st.Synced || !st.FromCache || st.CachedAt.IsZero() {
		t.Errorf("consul state with the agent down after a restart: %+v, want from_cache", st)
	}
	if code, be := getVia(listener); code != 200 || be != first {
		t.Errorf("through the proxy from the cache: %d from %q", code, be)
	}
	var ready instance.Readiness
	if code := consulGetJSON(t, "http://"+admin+"/readyz", &ready); code != 200 {
		t.Errorf("/readyz serving the cached set = %d %v", code, ready.Reasons)
	}

	agent.Restart()
	second := consulBackend(t, "127.0.1.22", "a")
	register("api-2", second)
	testwait.Until(t, 10*time.Second, "the pool to take the agent's set", func() bool {
		b := consulPoolBackends(t, admin)
		_, ok := b[second]
		return len(b) == 1 && ok
	})
	if st := poolConsul(admin); !st.Synced || st.FromCache {
		t.Errorf("consul state after the agent answered: %+v", st)
	}
	if code, be := getVia(listener); code != 200 || be != second {
		t.Errorf("through the proxy after the catch-up: %d from %q", code, be)
	}
}
