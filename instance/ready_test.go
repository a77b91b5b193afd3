package instance

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/internal/testwait"
)

// Readiness holds only with a config and, in every pool, a backend that
// can take a request; it fails at once when the drain begins. /readyz
// answers the same, 200 or 503, with the reasons.
func TestReadiness(t *testing.T) {
	var healthy atomic.Bool
	flaky := backend(t, "127.0.1.1", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" && !healthy.Load() {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	up := backend(t, "127.0.1.2", named("up"))
	a := newInstance(t)
	notReady := func(want string) func() bool {
		return func() bool { r := a.Ready(); return !r.Ready && slices.Contains(r.Reasons, want) }
	}
	ready := func() bool { return a.Ready().Ready }

	if !notReady("no config loaded")() {
		t.Errorf("readiness with no config: %+v", a.Ready())
	}
	cfg := parse(t, t.TempDir(), "a.yaml", fmt.Sprintf(`zone: zone-a
admin: { address: 127.0.0.1:0 }
shutdown: { drain_delay: 1m }
listeners:
  - name: web
    address: 127.0.0.1:0
    routes: [ { pool: up } ]
pools:
  - name: up
    backends: [ { address: %s, zone: zone-a } ]
  - name: flaky
    health: { active: { path: /healthz, interval: 20ms, timeout: 10ms, rise: 1, fall: 1 } }
    backends: [ { address: %s, zone: zone-a } ]
`, up, flaky))
	if err := a.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	drained := make(chan struct{})
	drainNow, cancel := context.WithCancel(context.Background())
	for _, step := range []struct {
		name  string
		do    func()
		want  func() bool
		ready bool
	}{
		{"flaky's only backend fails its checks", func() {}, notReady("pool flaky: no available backend (0 of 1)"), false},
		{"it passes them", func() { healthy.Store(true) }, ready, true},
		{"the drain begins", func() {
			go func() {
				a.Drain(drainNow)
				close(drained)
			}()
		}, notReady("draining: shutting down"), false},
	} {
		step.do()
		testwait.Until(t, 5*time.Second, step.name, step.want)
		code, r := readyz(t, a.AdminAddr())
		if r.Ready != step.ready || (code == http.StatusOK) != step.ready {
			t.Errorf("%s: /readyz = %d %+v, want ready %v", step.name, code, r, step.ready)
		}
	}
	cancel() // the drain delay ends early, and the drain with it
	select {
	case <-drained:
	case <-time.After(10 * time.Second):
		t.Fatal("Drain did not end with its context")
	}
}

// readyz reads /readyz from the admin listener.
func readyz(t *testing.T, admin string) (int, Readiness) {
	t.Helper()
	code, body := get(t, "http://"+admin+"/readyz")
	var r Readiness
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatalf("/readyz answered %d %q: %v", code, body, err)
	}
	return code, r
}
