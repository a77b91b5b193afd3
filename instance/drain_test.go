package instance

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/internal/testwait"
)

// Drain fails readiness at once while the listener still serves for the
// drain delay; then the listener stops accepting, the request in flight
// still gets its whole answer, and only then does Drain return, with the
// admin listener closed and no further config accepted.
func TestDrainFinishesInFlightThenStops(t *testing.T) {
	release := make(chan struct{})
	var slowStarted atomic.Bool
	be := backend(t, "127.0.1.1", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			slowStarted.Store(true)
			<-release
		}
		_, _ = io.WriteString(w, "done "+r.URL.Path)
	}))
	a := newInstance(t)
	dir := t.TempDir()
	cfg := parse(t, dir, "a.yaml", fmt.Sprintf(`zone: zone-a
admin: { address: 127.0.0.1:0 }
shutdown: { drain_delay: 2s, grace: 10s }
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
	web, admin := listenerAddr(t, a, "web"), a.AdminAddr()
	if r := a.Ready(); !r.Ready {
		t.Fatalf("not ready before the drain: %v", r.Reasons)
	}

	slow := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + web + "/slow")
		if err != nil {
			slow <- err.Error()
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		slow <- fmt.Sprintf("%s: %s (%v)", resp.Status, body, err)
	}()
	testwait.Until(t, 5*time.Second, "the slow request to reach the backend", slowStarted.Load)

	drained := make(chan struct{})
	go func() {
		a.Drain(context.Background())
		close(drained)
	}()
	testwait.Until(t, time.Second, "readiness to fail", func() bool { return !a.Ready().Ready })
	if r := a.Ready(); !slices.Contains(r.Reasons, "draining: shutting down") {
		t.Errorf("readiness while draining: %+v", r)
	}
	if code, _ := get(t, "http://"+admin+"/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz while draining = %d, want 503", code)
	}
	if code, body := get(t, "http://"+web+"/fast"); code != http.StatusOK || body != "done /fast" {
		t.Errorf("a new request within the drain delay: %d %q", code, body)
	}

	testwait.Until(t, 10*time.Second, "the listener to stop accepting", func() bool { return refused(web) })
	select {
	case <-drained:
		t.Fatal("Drain returned while a request was in flight")
	default:
	}
	close(release)
	if got, want := <-slow, "200 OK: done /slow (<nil>)"; got != want {
		t.Errorf("the request in flight got %q, want %q", got, want)
	}
	select {
	case <-drained:
	case <-time.After(10 * time.Second):
		t.Fatal("Drain did not return after the last request")
	}
	if !refused(admin) {
		t.Error("the admin listener accepts after the drain")
	}
	if err := a.Apply(cfg); err == nil {
		t.Error("a config applied after the drain")
	}
}
