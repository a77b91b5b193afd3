package instance

import (
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"testing"
)

// poolsOf lists, per pool in the status, its backends' addresses.
func poolsOf(st Status) map[string][]string {
	out := map[string][]string{}
	for _, p := range st.Pools {
		out[p.Name] = []string{}
		for _, b := range p.Backends {
			out[p.Name] = append(out[p.Name], b.Address)
		}
		slices.Sort(out[p.Name])
	}
	return out
}

// Reloads change pools, backends and routes, and each shows at once in
// the status and on the request path, on the same listener socket. A
// backend that stays keeps its live state: drained by the operator before
// a reload, it is drained after it.
func TestReloadChangesPoolsAndBackends(t *testing.T) {
	a1 := backend(t, "127.0.1.1", named("a1"))
	b1 := backend(t, "127.0.2.1", named("b1"))
	api := backend(t, "127.0.1.2", named("api"))
	dir := t.TempDir()
	path := filepath.Join(dir, "azimuth.yaml")
	config := func(webBackends, apiPool string) string {
		routes := "[ { pool: web } ]"
		if apiPool != "" {
			routes = "[ { path_prefix: /api/, pool: api }, { pool: web } ]"
		}
		return fmt.Sprintf(`zone: zone-a
admin: { address: 127.0.0.1:0 }
listeners:
  - name: web
    address: 127.0.0.1:0
    routes: %s
pools:
  - name: web
    backends: [ %s ]
%s`, routes, webBackends, apiPool)
	}
	a := newInstance(t)
	steps := []struct {
		name   string
		config string
		pools  map[string][]string
		paths  map[string]string // path → the backend that answers
	}{
		{
			name:   "one pool, one backend",
			config: config(fmt.Sprintf("{ address: %s, zone: zone-a }", a1), ""),
			pools:  map[string][]string{"web": {a1}},
			paths:  map[string]string{"/": "a1", "/api/x": "a1"},
		},
		{
			name: "a backend in zone-b and a pool for /api/",
			config: config(fmt.Sprintf("{ address: %s, zone: zone-a }, { address: %s, zone: zone-b }", a1, b1),
				fmt.Sprintf("  - name: api\n    backends: [ { address: %s, zone: zone-a } ]\n", api)),
			pools: map[string][]string{"web": {a1, b1}, "api": {api}},
			paths: map[string]string{"/": "a1", "/api/x": "api"},
		},
		{
			name:   "the api pool and zone-b's backend gone",
			config: config(fmt.Sprintf("{ address: %s, zone: zone-a }", a1), ""),
			pools:  map[string][]string{"web": {a1}},
			paths:  map[string]string{"/": "a1", "/api/x": "a1"},
		},
	}
	var listener string
	for _, step := range steps {
		writeFile(t, path, step.config)
		if cfg, err := a.Reload(path); err != nil || cfg == nil {
			t.Fatalf("%s: reload: %v", step.name, err)
		}
		st := a.Status()
		if got := poolsOf(st); fmt.Sprint(got) != fmt.Sprint(step.pools) {
			t.Errorf("%s: status pools %v, want %v", step.name, got, step.pools)
		}
		if !st.Config.LastReloadOK || st.Zone != "zone-a" {
			t.Errorf("%s: status config %+v, zone %q", step.name, st.Config, st.Zone)
		}
		if listener == "" {
			listener = listenerAddr(t, a, "web")
		} else if got := listenerAddr(t, a, "web"); got != listener {
			t.Errorf("%s: listener moved from %s to %s", step.name, listener, got)
		}
		for p, want := range step.paths {
			if code, body := get(t, "http://"+listener+p); code != http.StatusOK || body != want {
				t.Errorf("%s: GET %s = %d %q, want 200 from %s", step.name, p, code, body, want)
			}
		}
	}

	// The operator drains a1; the reload that brings b1 back keeps it
	// drained, so zone-a has nothing and requests spill to zone-b.
	resp, err := http.Post("http://"+a.AdminAddr()+"/pools/web/backends/"+a1+"/drain", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("draining a1: %s", resp.Status)
	}
	writeFile(t, path, steps[1].config)
	if _, err := a.Reload(path); err != nil {
		t.Fatal(err)
	}
	for _, p := range a.Status().Pools {
		for _, b := range p.Backends {
			if b.Address == a1 && (!b.Drained || b.Available) {
				t.Errorf("a1 after the reload: %+v, want drained", b)
			}
		}
	}
	if code, body := get(t, "http://"+listener+"/"); code != http.StatusOK || body != "b1" {
		t.Errorf("GET / with a1 drained = %d %q, want 200 from b1", code, body)
	}
}
