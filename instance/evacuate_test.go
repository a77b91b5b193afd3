package instance

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/configs"
	"github.com/azimuthproxy/azimuth/internal/testwait"
)

// do sends one request with an optional bearer token.
func do(t *testing.T, method, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// POST /evacuate fails readiness, on the admin API and on the readiness
// listener, while every request is still served; POST /restore ends it.
// Both need the admin token; without it they are refused with 401 and
// change nothing. The readiness listener serves readiness and nothing else.
func TestEvacuateFailsReadinessWhileServing(t *testing.T) {
	be := backend(t, "127.0.1.1", named("a"))
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "token"), "s3cret\n")
	a := newInstance(t)
	cfg := parse(t, dir, "a.yaml", fmt.Sprintf(`zone: zone-a
admin: { address: 127.0.0.1:0, token_file: token }
readiness: { address: 127.0.0.1:0 }
listeners:
  - name: web
    address: 127.0.0.1:0
    routes: [ { pool: web } ]
pools:
  - name: web
    backends: [ { address: %s, zone: zone-a } ]
`, be))
	if err := a.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	admin, ready, web := "http://"+a.AdminAddr(), "http://"+a.ReadyAddr(), "http://"+listenerAddr(t, a, "web")
	if a.ReadyAddr() == "" {
		t.Fatal("no readiness listener")
	}
	readyz := func(base string) (int, Readiness) {
		t.Helper()
		code, body := do(t, "GET", base+"/readyz", "")
		var r Readiness
		if err := json.Unmarshal([]byte(body), &r); err != nil {
			t.Fatalf("%s/readyz: %d %q", base, code, body)
		}
		return code, r
	}
	wantReady := func(step string, want bool) {
		t.Helper()
		for _, base := range []string{admin, ready} {
			code, r := readyz(base)
			if r.Ready != want || (code == http.StatusOK) != want {
				t.Errorf("%s: %s/readyz = %d %+v, want ready %v", step, base, code, r, want)
			}
		}
		if code, body := do(t, "GET", web+"/", ""); code != http.StatusOK || body != "a" {
			t.Errorf("%s: a request through the proxy got %d %q", step, code, body)
		}
	}
	evacuatedMetric := func() string {
		_, body := do(t, "GET", admin+"/metrics", "s3cret")
		for line := range strings.SplitSeq(body, "\n") {
			if strings.HasPrefix(line, "azimuth_evacuated ") {
				return strings.TrimPrefix(line, "azimuth_evacuated ")
			}
		}
		return "absent"
	}

	wantReady("at start", true)
	if code, _ := do(t, "POST", admin+"/evacuate", ""); code != http.StatusUnauthorized {
		t.Errorf("POST /evacuate without the token = %d, want 401", code)
	}
	if code, _ := do(t, "POST", admin+"/evacuate", "wrong"); code != http.StatusUnauthorized {
		t.Errorf("POST /evacuate with a wrong token = %d, want 401", code)
	}
	wantReady("after refused calls", true)
	if code, _ := do(t, "POST", ready+"/evacuate", "s3cret"); code != http.StatusNotFound && code != http.StatusMethodNotAllowed {
		t.Errorf("POST /evacuate on the readiness listener = %d, want it not served there", code)
	}
	if code, _ := do(t, "GET", ready+"/status", ""); code != http.StatusNotFound {
		t.Errorf("GET /status on the readiness listener = %d, want 404", code)
	}
	if code, body := do(t, "GET", ready+"/healthz", ""); code != http.StatusOK || body != "ok\n" {
		t.Errorf("GET /healthz on the readiness listener = %d %q", code, body)
	}
	if m := evacuatedMetric(); m != "0" {
		t.Errorf("azimuth_evacuated = %s before the evacuation, want 0", m)
	}

	if code, body := do(t, "POST", admin+"/evacuate", "s3cret"); code != http.StatusOK || !strings.Contains(body, `"evacuated":true`) || !strings.Contains(body, `"changed":true`) {
		t.Fatalf("POST /evacuate = %d %q", code, body)
	}
	wantReady("evacuated", false)
	if _, r := readyz(admin); !slices.ContainsFunc(r.Reasons, func(s string) bool { return strings.HasPrefix(s, "evacuated by an operator") }) {
		t.Errorf("readiness reasons while evacuated: %v", r.Reasons)
	}
	if st := a.Status(); !st.Evacuated || st.EvacuatedAt == nil || time.Since(*st.EvacuatedAt) > time.Minute {
		t.Errorf("status while evacuated: evacuated %v at %v", st.Evacuated, st.EvacuatedAt)
	}
	if m := evacuatedMetric(); m != "1" {
		t.Errorf("azimuth_evacuated = %s while evacuated, want 1", m)
	}
	if _, body := do(t, "POST", admin+"/evacuate", "s3cret"); !strings.Contains(body, `"changed":false`) {
		t.Errorf("a second POST /evacuate: %q, want no change", body)
	}
	if code, _ := do(t, "GET", admin+"/evacuate", "s3cret"); code != http.StatusMethodNotAllowed {
		t.Errorf("GET /evacuate = %d, want 405", code)
	}
	if code, _ := do(t, "POST", admin+"/restore", ""); code != http.StatusUnauthorized {
		t.Errorf("POST /restore without the token = %d, want 401", code)
	}
	wantReady("after a refused restore", false)

	if code, body := do(t, "POST", admin+"/restore", "s3cret"); code != http.StatusOK || !strings.Contains(body, `"evacuated":false`) {
		t.Fatalf("POST /restore = %d %q", code, body)
	}
	wantReady("restored", true)
	if st := a.Status(); st.Evacuated || st.EvacuatedAt != nil {
		t.Errorf("status after the restore: %+v", st)
	}
}

// readiness.min_healthy_share fails readiness when too few of a counted
// pool's backends are available, and readiness.pools leaves the others
// out of it.
func TestReadinessShareAndPools(t *testing.T) {
	var healthy atomic.Int32 // how many of web's four backends pass their checks
	healthy.Store(4)
	var webBackends []string
	for n := range 4 {
		webBackends = append(webBackends, backend(t, fmt.Sprintf("127.0.1.%d", n+1), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/healthz" && int32(n) >= healthy.Load() {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
		})))
	}
	var otherUp atomic.Bool
	other := backend(t, "127.0.2.1", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" && !otherUp.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	checks := "health: { active: { path: /healthz, interval: 20ms, timeout: 10ms, rise: 1, fall: 1 } }"
	config := func(readiness string) string {
		return fmt.Sprintf(`zone: zone-a
admin: { address: 127.0.0.1:0 }
%s
listeners:
  - name: web
    address: 127.0.0.1:0
    routes: [ { pool: web } ]
pools:
  - name: web
    %s
    backends:
      - { address: %s, zone: zone-a }
      - { address: %s, zone: zone-a }
      - { address: %s, zone: zone-b }
      - { address: %s, zone: zone-b }
  - name: other
    %s
    backends: [ { address: %s, zone: zone-a } ]
`, readiness, checks, webBackends[0], webBackends[1], webBackends[2], webBackends[3], checks, other)
	}
	dir := t.TempDir()
	a := newInstance(t)
	reasonWith := func(part string) func() bool {
		return func() bool {
			r := a.Ready()
			return !r.Ready && slices.ContainsFunc(r.Reasons, func(s string) bool { return strings.Contains(s, part) })
		}
	}
	// Every pool counts by default: other has no available backend.
	if err := a.Apply(parse(t, dir, "a.yaml", config(""))); err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, 5*time.Second, "other's failing backend to fail readiness", reasonWith("pool other: no available backend (0 of 1)"))

	// Only web counts, and half of it must be available.
	if err := a.Apply(parse(t, dir, "b.yaml", config("readiness: { pools: [web], min_healthy_share: 0.5 }"))); err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, 5*time.Second, "ready with other left out", func() bool { return a.Ready().Ready })
	healthy.Store(2) // 2 of 4: at the share, still ready
	testwait.Until(t, 5*time.Second, "two of web's backends to fail their checks", func() bool { return healthyIn(a, "web") == 2 })
	if r := a.Ready(); !r.Ready {
		t.Errorf("2 of 4 available with min_healthy_share 0.5: not ready: %v", r.Reasons)
	}
	healthy.Store(1) // 1 of 4: below
	testwait.Until(t, 5*time.Second, "readiness to fail below the share", reasonWith("pool web: 1 of 4 backends available, below readiness.min_healthy_share 0.5"))

	// Without the share, one of four is enough again.
	if err := a.Apply(parse(t, dir, "c.yaml", config("readiness: { pools: [web] }"))); err != nil {
		t.Fatal(err)
	}
	if r := a.Ready(); !r.Ready {
		t.Errorf("1 of 4 available without min_healthy_share: not ready: %v", r.Reasons)
	}
}

// healthyIn is how many of the pool's backends may take requests.
func healthyIn(a *Instance, pool string) int {
	for _, p := range a.registry.Pools() {
		if p.Name() == pool {
			return p.Status().Healthy
		}
	}
	return -1
}

// Named admin tokens: each opens the admin API; every state-changing call
// is logged with the name of the token that made it; a token read from an
// empty file is refused rather than opening the API to anyone.
func TestNamedAdminTokens(t *testing.T) {
	be := backend(t, "127.0.1.1", named("a"))
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "default"), "d3fault\n")
	writeFile(t, filepath.Join(dir, "ops"), "0ps-token\n")
	writeFile(t, filepath.Join(dir, "empty"), "\n")
	var logs lockedLog
	a := newInstanceWith(t, Options{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	config := func(tokens string) *configs.Config {
		return parse(t, dir, "a.yaml", fmt.Sprintf(`zone: zone-a
admin: { address: 127.0.0.1:0, token_file: default, tokens: [%s] }
listeners:
  - name: web
    address: 127.0.0.1:0
    routes: [ { pool: web } ]
pools:
  - name: web
    backends: [ { address: %s, zone: zone-a } ]
`, tokens, be))
	}
	if err := a.Apply(config("{ name: ops, file: ops }")); err != nil {
		t.Fatal(err)
	}
	admin := "http://" + a.AdminAddr()
	for _, tc := range []struct{ token, name string }{{"0ps-token", "ops"}, {"d3fault", "default"}} {
		if code, _ := do(t, "GET", admin+"/status", tc.token); code != http.StatusOK {
			t.Errorf("GET /status with %s's token = %d", tc.name, code)
		}
		if code, _ := do(t, "POST", admin+"/pools/web/zones/zone-a/drain", tc.token); code != http.StatusOK {
			t.Errorf("POST drain with %s's token = %d", tc.name, code)
		}
		testwait.Until(t, 5*time.Second, "the drain to be logged with "+tc.name, func() bool {
			return logs.has(func(l map[string]any) bool {
				return l["msg"] == "admin call" && l["token"] == tc.name && l["path"] == "/pools/web/zones/zone-a/drain" && l["status"] == float64(200)
			})
		})
	}
	if code, _ := do(t, "POST", admin+"/evacuate", "0ps-tokenx"); code != http.StatusUnauthorized {
		t.Errorf("POST /evacuate with a wrong token = %d, want 401", code)
	}
	if logs.has(func(l map[string]any) bool { return l["msg"] == "admin call" && l["path"] == "/evacuate" }) {
		t.Error("a refused call was logged as made")
	}
	if logs.has(func(l map[string]any) bool { return l["msg"] == "admin call" && l["path"] == "/status" }) {
		t.Error("a GET was logged as a state change")
	}

	// A reload whose token file is empty keeps the tokens that run.
	if err := a.Apply(config("{ name: ops, file: ops }, { name: blank, file: empty }")); err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, 5*time.Second, "the empty token to be refused", func() bool {
		return logs.has(func(l map[string]any) bool {
			e, _ := l["error"].(string)
			return l["msg"] == "admin settings not applied" && strings.Contains(e, `admin token "blank"`)
		})
	})
	if code, _ := do(t, "GET", admin+"/status", ""); code != http.StatusUnauthorized {
		t.Errorf("GET /status with no token after an empty token file = %d, want 401", code)
	}
	if code, _ := do(t, "GET", admin+"/status", "0ps-token"); code != http.StatusOK {
		t.Errorf("GET /status with ops's token after the refused tokens = %d, want 200", code)
	}
}

// lockedLog collects JSON log lines from any goroutine.
type lockedLog struct {
	mu    sync.Mutex
	lines []map[string]any
}

func (l *lockedLog) Write(p []byte) (int, error) {
	var m map[string]any
	if err := json.Unmarshal(p, &m); err != nil {
		return 0, err
	}
	l.mu.Lock()
	l.lines = append(l.lines, m)
	l.mu.Unlock()
	return len(p), nil
}

func (l *lockedLog) has(match func(map[string]any) bool) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.ContainsFunc(l.lines, match)
}
