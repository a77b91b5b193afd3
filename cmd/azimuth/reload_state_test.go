package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/instance"
	"github.com/azimuthproxy/azimuth/internal/testwait"
)

// reloadBackendState returns a backend's entry in /status.
func reloadBackendState(t *testing.T, admin, pool, addr string) instance.BackendStatus {
	t.Helper()
	for _, p := range reloadGetStatus(t, admin).Pools {
		if p.Name != pool {
			continue
		}
		for _, b := range p.Backends {
			if b.Address == addr {
				return b
			}
		}
	}
	t.Fatalf("backend %s not in pool %s", addr, pool)
	return instance.BackendStatus{}
}

// A backend present before and after a reload keeps its live state (here
// an operator's drain), and the log says what the reload changed.
func TestReloadKeepsLiveState(t *testing.T) {
	a1 := reloadStartBackend(t, "127.0.1.1", 0)
	a2 := reloadStartBackend(t, "127.0.1.2", 0)
	b1 := reloadStartBackend(t, "127.0.2.1", 0)
	_, path := reloadDir(t)
	cfg := reloadConfig{listen: "127.0.0.1:0", backends: []*reloadBackend{a1, a2}}
	reloadWrite(t, path, cfg.yaml())
	p, admin := reloadStart(t, path)
	url := "http://" + reloadListenerAddr(t, admin, "web") + "/"

	resp, err := http.Post("http://"+admin+"/pools/web/backends/"+a1.addr+"/drain", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("drain override: %d %s", resp.StatusCode, body)
	}
	if !reloadBackendState(t, admin, "web", a1.addr).Drained {
		t.Fatal("backend not drained after the override")
	}

	// Same backends plus one, and a second listener and pool.
	cfg.backends = []*reloadBackend{a1, a2, b1}
	content := strings.Replace(cfg.yaml(), "pools:\n",
		"  - name: side\n    address: 127.0.0.6:0\n    routes: [ { pool: extra } ]\npools:\n", 1) +
		"  - name: extra\n    backends: [ { address: " + b1.addr + ", zone: zone-b } ]\n"
	reloadWrite(t, path, content)
	reloadWaitBackends(t, admin, []*reloadBackend{a1, a2, b1})
	applied := p.waitLog(t, "config applied", func(l map[string]any) bool {
		added, _ := l["pools_added"].([]any)
		return len(added) == 1 && added[0] == "extra"
	})
	if opened, _ := applied["listeners_opened"].([]any); len(opened) != 1 || !strings.HasPrefix(opened[0].(string), "side@127.0.0.6") {
		t.Errorf("config applied logs listeners_opened %v, want [side@127.0.0.6:0]", applied["listeners_opened"])
	}
	if !reloadBackendState(t, admin, "web", a1.addr).Drained {
		t.Fatal("the drain was lost in the reload")
	}
	client := reloadClient(t, 1)
	hits := a1.hits.Load()
	for range 20 {
		resp, err := client.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if be := resp.Header.Get("X-Backend"); resp.StatusCode != http.StatusOK || be == a1.addr {
			t.Fatalf("status %d from %s; want 200 from a backend other than the drained %s", resp.StatusCode, be, a1.addr)
		}
	}
	if a1.hits.Load() != hits {
		t.Errorf("the drained backend took requests after the reload")
	}
	side := "http://" + reloadListenerAddr(t, admin, "side") + "/"
	testwait.Until(t, 5*time.Second, "the new listener serves its pool", func() bool {
		resp, err := client.Get(side)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.Header.Get("X-Backend") == b1.addr
	})
}
