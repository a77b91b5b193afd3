package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/instance"
	"github.com/azimuthproxy/azimuth/internal/consultest"
	"github.com/azimuthproxy/azimuth/internal/testwait"
	"github.com/hashicorp/consul/api"
)

// overridesAdmin posts an admin call with token ("" for none) and returns
// the status and the JSON answer.
func overridesAdmin(t *testing.T, admin, path, token string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+admin+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	var body map[string]any
	data, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(data, &body)
	return resp.StatusCode, body
}

// overridesToken is the token the tests' /status reads send.
const overridesToken = "alice-secret"

// overridesStatus reads /status with overridesToken.
func overridesStatus(t *testing.T, admin string) instance.Status {
	t.Helper()
	return getStatusWith(t, admin, overridesToken)
}

// overridesStart starts a proxy and reads its admin and listener
// addresses.
func overridesStart(t *testing.T, path string, env ...string) (p *process, admin, listener string) {
	t.Helper()
	p = start(t, path, env...)
	admin = p.waitLog(t, "admin listening", nil)["address"].(string)
	st := overridesStatus(t, admin)
	if len(st.Listeners) == 0 {
		t.Fatal("no listener in /status")
	}
	return p, admin, st.Listeners[0].Address
}

// overridesBackends counts the backends of every pool per /status.
func overridesBackends(t *testing.T, admin string) int {
	n := 0
	for _, p := range overridesStatus(t, admin).Pools {
		n += len(p.Backends)
	}
	return n
}

// overridesZoneDrained reads whether /status shows pool's zone drained.
func overridesZoneDrained(t *testing.T, admin, pool, zone string) bool {
	t.Helper()
	for _, p := range overridesStatus(t, admin).Pools {
		if p.Name != pool {
			continue
		}
		for _, z := range p.Zones {
			if z.Zone == zone {
				return z.Drained
			}
		}
	}
	return false
}

// overridesZones sends n GETs through listener and counts the answers by
// the zone of the backend that gave them; a failed request fails the test.
func overridesZones(t *testing.T, listener string, n int) map[string]int {
	t.Helper()
	out := map[string]int{}
	for range n {
		resp, err := http.Get("http://" + listener + "/")
		if err != nil {
			t.Fatalf("GET through the proxy: %v", err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("GET through the proxy: %d", resp.StatusCode)
		}
		zone := resp.Header.Get("X-Backend-Zone")
		if zone == "" {
			zone = strings.TrimPrefix(reloadZoneOf(resp.Header.Get("X-Backend")), "zone-")
		}
		out[zone]++
	}
	return out
}

// overridesReady reads /readyz.
func overridesReady(t *testing.T, admin string) (int, instance.Readiness) {
	t.Helper()
	var r instance.Readiness
	code := consulGetJSON(t, "http://"+admin+"/readyz", &r)
	return code, r
}

// Two proxies of one region share a Consul agent: a zone drained through
// proxy 1's admin API stops getting proxy 2's traffic within a second,
// and stays drained across proxy 2's restart; an enable and an
// evacuation made through either reach the other; a call without the
// token changes nothing anywhere; with the agent away a drain applies to
// the proxy that took it, and the answer says so.
func TestOverridesSharedAcrossARegion(t *testing.T) {
	agent := consultest.Start(t)
	for i, b := range []struct{ ip, zone string }{{"127.0.1.41", "a"}, {"127.0.2.41", "b"}} {
		addr := consulBackend(t, b.ip, b.zone)
		host, port, _ := net.SplitHostPort(addr)
		p, _ := strconv.Atoi(port)
		if err := agent.Client().Agent().ServiceRegister(&api.AgentServiceRegistration{
			ID: fmt.Sprintf("api-%d", i), Name: "api", Address: host, Port: p, Meta: map[string]string{"az": b.zone},
			Check: &api.AgentServiceCheck{TTL: "10m", Status: api.HealthPassing},
		}); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	for name, token := range map[string]string{"alice": "alice-secret", "bob": "bob-secret"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(token+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	config := func(name string) string {
		path := filepath.Join(dir, name+".yaml")
		if err := os.WriteFile(path, []byte(fmt.Sprintf(`zone: a
admin:
  address: 127.0.0.1:0
  tokens: [ { name: alice, file: alice }, { name: bob, file: bob } ]
shutdown: { drain_delay: 0s, grace: 2s }
log: { access_log: { output: "off" } }
consul: { address: %s }
listeners:
  - name: http
    address: 127.0.0.1:0
    routes: [ { pool: api } ]
pools:
  - name: api
    consul: { service: api, zone_meta: az }
`, agent.Addr())), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	path1, path2 := config("p1"), config("p2")
	_, admin1, listener1 := overridesStart(t, path1)
	p2, admin2, listener2 := overridesStart(t, path2)
	for _, admin := range []string{admin1, admin2} {
		testwait.Until(t, 10*time.Second, "the pool to fill from consul", func() bool { return overridesBackends(t, admin) == 2 })
	}
	if z := overridesZones(t, listener2, 10); z["a"] != 10 {
		t.Fatalf("proxy 2 in zone a sent %v, want all to zone a", z)
	}

	// Without the token: 401, nothing changes here, there or in Consul.
	if code, _ := overridesAdmin(t, admin1, "/pools/api/zones/a/drain", ""); code != http.StatusUnauthorized {
		t.Fatalf("drain without the token = %d, want 401", code)
	}
	if code, _ := overridesAdmin(t, admin1, "/evacuate", "wrong"); code != http.StatusUnauthorized {
		t.Fatalf("evacuate with a wrong token = %d, want 401", code)
	}
	if keys, _, err := agent.Client().KV().Keys("azimuth/overrides/", "", nil); err != nil || len(keys) != 0 {
		t.Fatalf("consul holds %v (%v) after refused calls, want nothing", keys, err)
	}
	if overridesZoneDrained(t, admin1, "api", "a") {
		t.Fatal("a refused drain drained the zone")
	}

	code, body := overridesAdmin(t, admin1, "/pools/api/zones/a/drain", "alice-secret")
	drainedAt := time.Now()
	if code != 200 || body["drained"] != true {
		t.Fatalf("drain through proxy 1 = %d %v", code, body)
	}
	testwait.Until(t, 5*time.Second, "proxy 2 to drain zone a", func() bool { return overridesZoneDrained(t, admin2, "api", "a") })
	took := time.Since(drainedAt)
	t.Logf("zone a drained on proxy 2 %v after proxy 1 answered", took)
	if took > time.Second {
		t.Errorf("proxy 2 drained zone a %v after the call, want within a second", took)
	}
	if z := overridesZones(t, listener2, 40); z["a"] != 0 || z["b"] != 40 {
		t.Fatalf("proxy 2 after the drain sent %v, want all to zone b", z)
	}
	p2.waitLog(t, "override applied", func(l map[string]any) bool {
		return l["override"] == "zone api/a" && l["by"] == "alice" && l["source"] == "consul" && l["on"] == true
	})

	// Proxy 2 restarts: zone a is drained before it serves a request.
	p2.cmd.Process.Signal(syscall.SIGTERM)
	if code := p2.exitCode(t); code != 0 {
		t.Fatalf("proxy 2 exit %d", code)
	}
	_, admin2, listener2 = overridesStart(t, path2)
	testwait.Until(t, 10*time.Second, "the restarted pool to fill from consul", func() bool { return overridesBackends(t, admin2) == 2 })
	if z := overridesZones(t, listener2, 40); z["a"] != 0 {
		t.Fatalf("restarted proxy 2 sent %v, want zone a still drained", z)
	}
	st := overridesStatus(t, admin2)
	if len(st.Overrides.InForce) != 1 || st.Overrides.InForce[0].Name != "a" || st.Overrides.InForce[0].By != "alice" || st.Overrides.ConsulPrefix != "azimuth/overrides/" {
		t.Errorf("restarted proxy 2's /status overrides = %+v", st.Overrides)
	}

	// An enable through proxy 2 reaches proxy 1.
	if code, body := overridesAdmin(t, admin2, "/pools/api/zones/a/enable", "bob-secret"); code != 200 || body["drained"] != false {
		t.Fatalf("enable through proxy 2 = %d %v", code, body)
	}
	testwait.Until(t, 5*time.Second, "proxy 1 to enable zone a", func() bool { return !overridesZoneDrained(t, admin1, "api", "a") })
	if z := overridesZones(t, listener1, 10); z["a"] != 10 {
		t.Fatalf("proxy 1 after the enable sent %v, want all to zone a", z)
	}

	// An evacuation through proxy 2 fails both proxies' readiness; both
	// keep serving; a restore through proxy 1 ends it for both.
	if code, body := overridesAdmin(t, admin2, "/evacuate", "bob-secret"); code != 200 || body["evacuated"] != true {
		t.Fatalf("evacuate through proxy 2 = %d %v", code, body)
	}
	testwait.Until(t, 5*time.Second, "proxy 1's readiness to fail", func() bool { code, _ := overridesReady(t, admin1); return code == 503 })
	if _, r := overridesReady(t, admin1); len(r.Reasons) != 1 || !strings.Contains(r.Reasons[0], "evacuated by an operator (bob)") {
		t.Errorf("proxy 1's readiness reasons %q", r.Reasons)
	}
	if z := overridesZones(t, listener1, 5); z["a"] != 5 {
		t.Errorf("evacuated proxy 1 sent %v, want served as before", z)
	}
	if code, _ := overridesAdmin(t, admin1, "/restore", "alice-secret"); code != 200 {
		t.Fatalf("restore through proxy 1 = %d", code)
	}
	for n, admin := range []string{admin1, admin2} {
		deadline := time.Now().Add(5 * time.Second)
		for {
			code, r := overridesReady(t, admin)
			if code == 200 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("proxy %d's readiness after the restore: %d %q; its overrides %+v", n+1, code, r.Reasons, overridesStatus(t, admin).Overrides)
			}
			time.Sleep(10 * time.Millisecond) // polling interval
		}
	}

	// With the agent away, a drain applies to the proxy that took it, and
	// the answer says it was not shared.
	agent.Stop()
	code, body = overridesAdmin(t, admin1, "/pools/api/zones/b/drain", "alice-secret")
	if code != http.StatusServiceUnavailable || body["drained"] != true || body["error"] == nil {
		t.Fatalf("drain with consul away = %d %v, want 503 with the error", code, body)
	}
	if !overridesZoneDrained(t, admin1, "api", "b") || overridesZoneDrained(t, admin2, "api", "b") {
		t.Error("a drain with consul away must apply to proxy 1 only")
	}
}

// Without Consul, drains and an evacuation are kept in the state file and
// are in force again after a restart; enables and a restore are kept too.
func TestOverridesSurviveARestartWithoutConsul(t *testing.T) {
	a := reloadStartBackend(t, "127.0.1.42", 0)
	b := reloadStartBackend(t, "127.0.2.42", 0)
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	path := filepath.Join(dir, "azimuth.yaml")
	if err := os.WriteFile(path, []byte(fmt.Sprintf(`zone: a
admin: { address: 127.0.0.1:0 }
shutdown: { drain_delay: 0s, grace: 2s }
log: { access_log: { output: "off" } }
listeners:
  - name: http
    address: 127.0.0.1:0
    routes: [ { pool: api } ]
pools:
  - name: api
    backends:
      - { address: %s, zone: a }
      - { address: %s, zone: b }
`, a.addr, b.addr)), 0o644); err != nil {
		t.Fatal(err)
	}
	// The default state file is under $STATE_DIRECTORY, as systemd sets it.
	env := "STATE_DIRECTORY=" + state
	restart := func(p *process) (*process, string, string) {
		t.Helper()
		if p != nil {
			p.cmd.Process.Signal(syscall.SIGTERM)
			if code := p.exitCode(t); code != 0 {
				t.Fatalf("exit %d", code)
			}
		}
		return overridesStart(t, path, env)
	}
	p, admin, listener := restart(nil)
	if z := overridesZones(t, listener, 5); z["a"] != 5 {
		t.Fatalf("before any override: %v", z)
	}
	if code, _ := overridesAdmin(t, admin, "/pools/api/backends/"+a.addr+"/drain", ""); code != 200 {
		t.Fatalf("backend drain = %d", code)
	}
	if code, _ := overridesAdmin(t, admin, "/evacuate", ""); code != 200 {
		t.Fatalf("evacuate = %d", code)
	}
	if _, err := os.Stat(filepath.Join(state, "overrides.json")); err != nil {
		t.Fatalf("no state file after the overrides: %v", err)
	}

	p, admin, listener = restart(p)
	if z := overridesZones(t, listener, 20); z["a"] != 0 || z["b"] != 20 {
		t.Errorf("after a restart the drained backend got traffic: %v", z)
	}
	if code, r := overridesReady(t, admin); code != 503 || len(r.Reasons) == 0 || !strings.Contains(r.Reasons[0], "evacuated") {
		t.Errorf("after a restart readiness = %d %q, want evacuated", code, r.Reasons)
	}
	if st := overridesStatus(t, admin); !st.Evacuated || st.EvacuatedBy != "none" || len(st.Overrides.InForce) != 2 {
		t.Errorf("after a restart /status = evacuated %v by %q, overrides %+v", st.Evacuated, st.EvacuatedBy, st.Overrides)
	}
	p.waitLog(t, "overrides in force at start", func(l map[string]any) bool { return l["source"] == "file" })

	if code, _ := overridesAdmin(t, admin, "/pools/api/backends/"+a.addr+"/enable", ""); code != 200 {
		t.Fatalf("backend enable = %d", code)
	}
	if code, _ := overridesAdmin(t, admin, "/restore", ""); code != 200 {
		t.Fatalf("restore = %d", code)
	}
	_, admin, listener = restart(p)
	if z := overridesZones(t, listener, 5); z["a"] != 5 {
		t.Errorf("after enable and a restart: %v, want zone a again", z)
	}
	if code, _ := overridesReady(t, admin); code != 200 {
		t.Errorf("after restore and a restart readiness = %d", code)
	}
}
