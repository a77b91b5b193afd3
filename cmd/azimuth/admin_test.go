package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/instance"
	"github.com/azimuthproxy/azimuth/internal/testwait"
)

// obsReady reads /readyz.
func obsReady(t *testing.T, admin string) (int, instance.Readiness) {
	t.Helper()
	code, body := obsDo(t, "GET", "http://"+admin+"/readyz", "")
	var r instance.Readiness
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("/readyz body is not JSON: %v: %s", err, body)
	}
	if (code == http.StatusOK) != r.Ready {
		t.Fatalf("/readyz = %d with ready=%v", code, r.Ready)
	}
	return code, r
}

// obsTwoZones is a pool web over one backend in zone a and one in zone b,
// with fast active checks; extra goes before pools.
func obsTwoZones(a, b, extra string) string {
	return extra + "pools:\n  - name: web\n" +
		"    health: { active: { path: /healthz, interval: 100ms, timeout: 100ms, rise: 1, fall: 1 } }\n" +
		"    backends:\n      - { address: " + a + ", zone: a }\n      - { address: " + b + ", zone: b }\n"
}

// TestObsReadyzFollowsBackends: /readyz turns 200 once the pool's checks
// pass, stays 200 while one zone is down (and /status says which), and
// turns 503 naming the pool when every backend is gone.
func TestObsReadyzFollowsBackends(t *testing.T) {
	a := obsBackend(t, "127.0.1.1", obsNamed("a"))
	b := obsBackend(t, "127.0.2.1", obsNamed("b"))
	_, admin := obsStart(t, obsConfig(t, t.TempDir(), obsTwoZones(a.addr, b.addr, "")))
	testwait.Until(t, 10*time.Second, "/readyz 200", func() bool { code, _ := obsReady(t, admin); return code == http.StatusOK })

	if code, _ := obsDo(t, "GET", "http://"+admin+"/debug/pprof/", ""); code != http.StatusNotFound {
		t.Errorf("/debug/pprof/ with admin.pprof off = %d, want 404", code)
	}
	if code, body := obsDo(t, "POST", "http://"+admin+"/status", ""); code != http.StatusMethodNotAllowed {
		t.Errorf("POST /status = %d %s, want 405", code, body)
	}
	st := obsGetStatus(t, admin, "")
	if st.Zone != "a" || st.Draining || !st.Readiness.Ready || len(st.Config.Hash) < 16 || st.Config.LoadedAt.IsZero() || !st.Config.LastReloadOK {
		t.Errorf("/status header = zone %q draining %v ready %v config %+v", st.Zone, st.Draining, st.Readiness.Ready, st.Config)
	}
	if len(st.Pools) != 1 || st.Pools[0].Name != "web" || len(st.Pools[0].Backends) != 2 || len(st.Pools[0].Zones) != 2 {
		t.Fatalf("/status pools = %+v, want web with 2 zones and 2 backends", st.Pools)
	}

	a.close()
	var down obsStatus
	testwait.Until(t, 10*time.Second, "zone a's backend down in /status", func() bool {
		down = obsGetStatus(t, admin, "")
		return down.Pools[0].Backends[0].State == "down"
	})
	pool := down.Pools[0]
	for _, z := range pool.Zones {
		want := map[string][3]float64{"a": {1, 0, 0}, "b": {1, 1, 1}}[z.Zone]
		if got := [3]float64{float64(z.Total), float64(z.Healthy), z.HealthyRatio}; got != want || z.Local != (z.Zone == "a") {
			t.Errorf("zone %s: total, healthy, ratio = %v local %v; want %v local %v", z.Zone, got, z.Local, want, z.Zone == "a")
		}
	}
	ba, bb := pool.Backends[0], pool.Backends[1]
	if ba.Address != a.addr || ba.Zone != "a" || ba.Available || ba.LastError == "" || ba.Weight != 1 {
		t.Errorf("backend a = %+v, want down, unavailable, with the check's error", ba)
	}
	if bb.Address != b.addr || bb.State != "up" || !bb.Available {
		t.Errorf("backend b = %+v, want up", bb)
	}
	if code, r := obsReady(t, admin); code != http.StatusOK {
		t.Errorf("/readyz with zone b up = %d %v, want 200", code, r.Reasons)
	}

	b.close()
	var r instance.Readiness
	testwait.Until(t, 10*time.Second, "/readyz 503", func() bool { code, rr := obsReady(t, admin); r = rr; return code == http.StatusServiceUnavailable })
	if want := []string{"pool web: no available backend (0 of 2)"}; !slices.Equal(r.Reasons, want) {
		t.Errorf("reasons %q, want %q", r.Reasons, want)
	}
}

// TestObsReadyzFailsAtOnceOnDrain: SIGTERM turns /readyz 503 while the
// listener still serves for drain_delay, then the process exits 0.
func TestObsReadyzFailsAtOnceOnDrain(t *testing.T) {
	a := obsBackend(t, "127.0.1.1", obsNamed("a"))
	b := obsBackend(t, "127.0.2.1", obsNamed("b"))
	p, admin := obsStart(t, obsConfig(t, t.TempDir(), obsTwoZones(a.addr, b.addr, "")))
	addr := obsListener(t, admin, "", "http")
	testwait.Until(t, 10*time.Second, "/readyz 200", func() bool { code, _ := obsReady(t, admin); return code == http.StatusOK })

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The drain log line is written after readiness flipped.
	p.waitLog(t, "draining: readiness fails now", nil)
	code, r := obsReady(t, admin)
	if code != http.StatusServiceUnavailable || !slices.Contains(r.Reasons, "draining: shutting down") {
		t.Fatalf("/readyz while draining = %d %q", code, r.Reasons)
	}
	if got := obsProxyGet(t, addr, 1); got[0] != "a" {
		t.Errorf("request during drain_delay answered by %q", got[0])
	}
	if code := p.exitCode(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

// TestObsAdminToken: with admin.token_file, everything but /healthz and
// /readyz needs the bearer token; overrides are POST only; a zone drained
// through the API gets no requests until it is enabled again.
func TestObsAdminToken(t *testing.T) {
	const token = "s3cret-token"
	a := obsBackend(t, "127.0.1.1", obsNamed("a"))
	b := obsBackend(t, "127.0.2.1", obsNamed("b"))
	cfg := obsTokenConfig(t, token, ", pprof: true", obsTwoZones(a.addr, b.addr, ""))
	_, admin := obsStart(t, cfg)
	testwait.Until(t, 10*time.Second, "/readyz 200", func() bool { code, _ := obsReady(t, admin); return code == http.StatusOK })

	tests := []struct {
		method, path, token string
		want                int
	}{
		{"GET", "/healthz", "", 200},
		{"GET", "/readyz", "", 200},
		{"GET", "/status", "", 401},
		{"GET", "/status", "wrong", 401},
		{"GET", "/status", token + "x", 401},
		{"GET", "/status", token, 200},
		{"GET", "/metrics", "", 401},
		{"GET", "/metrics", "wrong", 401},
		{"GET", "/metrics", token, 200},
		{"GET", "/", "", 401},
		{"GET", "/", token, 200},
		{"GET", "/debug/pprof/", "", 401},
		{"GET", "/debug/pprof/", token, 200},
		{"POST", "/pools/web/zones/a/drain", "", 401},
		{"POST", "/pools/web/zones/a/drain", "wrong", 401},
		{"POST", "/pools/web/backends/" + a.addr + "/drain", "", 401},
		{"GET", "/pools/web/zones/a/drain", token, 405},
		{"GET", "/pools/web/zones/a/enable", token, 405},
		{"POST", "/pools/web/zones/nowhere/drain", token, 404},
		{"POST", "/pools/nopool/zones/a/drain", token, 404},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s %s token=%q", tt.method, tt.path, tt.token), func(t *testing.T) {
			if code, body := obsDo(t, tt.method, "http://"+admin+tt.path, tt.token); code != tt.want {
				t.Errorf("= %d %s, want %d", code, body, tt.want)
			}
		})
	}
	if st := obsGetStatus(t, admin, token); st.Pools[0].Zones[0].Drained {
		t.Fatal("a refused override drained zone a")
	}

	addr := obsListener(t, admin, token, "http")
	answeredBy := func() map[string]int {
		n := map[string]int{}
		for _, body := range obsProxyGet(t, addr, 10) {
			n[body]++
		}
		return n
	}
	if got := answeredBy(); got["a"] != 10 {
		t.Fatalf("before the drain: answered by %v, want all by local zone a", got)
	}
	if code, body := obsDo(t, "POST", "http://"+admin+"/pools/web/zones/a/drain", token); code != 200 || !strings.Contains(string(body), `"drained":true`) {
		t.Fatalf("drain zone a = %d %s", code, body)
	}
	if got := answeredBy(); got["b"] != 10 {
		t.Errorf("zone a drained: answered by %v, want all by zone b", got)
	}
	st := obsGetStatus(t, admin, token)
	if z := st.Pools[0].Zones[0]; z.Zone != "a" || !z.Drained {
		t.Errorf("/status zone a after drain = %+v", z)
	}
	if code, body := obsDo(t, "POST", "http://"+admin+"/pools/web/zones/a/enable", token); code != 200 || !strings.Contains(string(body), `"drained":false`) {
		t.Fatalf("enable zone a = %d %s", code, body)
	}
	if got := answeredBy(); got["a"] != 10 {
		t.Errorf("zone a enabled again: answered by %v, want all by zone a", got)
	}
}

// TestObsEvacuate: on the real binary, POST /evacuate without the token is
// refused and changes nothing; with it, /readyz fails on the admin API and
// on the readiness listener while requests keep succeeding, until POST
// /restore.
func TestObsEvacuate(t *testing.T) {
	const token = "s3cret-token"
	a := obsBackend(t, "127.0.1.1", obsNamed("a"))
	b := obsBackend(t, "127.0.2.1", obsNamed("b"))
	cfg := obsTokenConfig(t, token, "", obsTwoZones(a.addr, b.addr, "readiness: { address: 127.0.0.1:0 }\n"))
	p, admin := obsStart(t, cfg)
	ready := p.waitLog(t, "readiness listening", nil)["address"].(string)
	addr := obsListener(t, admin, token, "http")
	for _, at := range []string{admin, ready} {
		testwait.Until(t, 10*time.Second, at+"/readyz 200", func() bool { code, _ := obsReady(t, at); return code == http.StatusOK })
	}

	if code, _ := obsDo(t, "POST", "http://"+admin+"/evacuate", ""); code != http.StatusUnauthorized {
		t.Fatalf("POST /evacuate without the token = %d, want 401", code)
	}
	if code, _ := obsReady(t, admin); code != http.StatusOK {
		t.Fatalf("a refused /evacuate changed readiness: %d", code)
	}
	if code, body := obsDo(t, "POST", "http://"+admin+"/evacuate", token); code != http.StatusOK {
		t.Fatalf("POST /evacuate = %d %s", code, body)
	}
	p.waitLog(t, "admin: evacuate", nil)
	for _, at := range []string{admin, ready} {
		if code, r := obsReady(t, at); code != http.StatusServiceUnavailable || len(r.Reasons) == 0 || !strings.HasPrefix(r.Reasons[0], "evacuated by an operator") {
			t.Errorf("%s/readyz while evacuated = %d %v", at, code, r.Reasons)
		}
	}
	obsProxyGet(t, addr, 20) // every request still answered
	if st := obsGetStatus(t, admin, token); !st.Evacuated {
		t.Errorf("/status while evacuated: evacuated %v", st.Evacuated)
	}
	if code, body := obsDo(t, "POST", "http://"+admin+"/restore", token); code != http.StatusOK {
		t.Fatalf("POST /restore = %d %s", code, body)
	}
	if code, _ := obsReady(t, ready); code != http.StatusOK {
		t.Errorf("readiness after /restore = %d", code)
	}
}

// obsTokenConfig is obsConfig with the admin API guarded by token (kept
// in a file) and the other admin settings in more.
func obsTokenConfig(t *testing.T, token, more, body string) string {
	t.Helper()
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := obsConfig(t, dir, body)
	if err := os.WriteFile(cfg, []byte(strings.Replace(mustRead(t, cfg), "admin: { address: 127.0.0.1:0 }",
		"admin: { address: 127.0.0.1:0, token_file: "+tokenFile+more+" }", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg
}
