package main

import (
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/instance"
	"github.com/azimuthproxy/azimuth/internal/testwait"
)

// The per-try timeout a pool uses now is in /status and in
// azimuth_per_try_timeout_seconds: learned by default (1s until enough
// samples, then 3 × the p99 within 20ms..5s), fixed or off when the file
// says so.
func TestPerTryInStatusAndMetrics(t *testing.T) {
	dir := t.TempDir()
	b := obsBackend(t, "127.0.1.1", obsNamed("a"))
	_, admin := obsStart(t, obsConfig(t, dir, fmt.Sprintf(`log: { access_log: { output: "off" } }
pools:
  - name: web
    backends: [{ address: %s, zone: a }]
  - name: fixed
    timeouts: { per_try: 250ms }
    backends: [{ address: %s, zone: a }]
  - name: none
    timeouts: { per_try: "off" }
    backends: [{ address: %s, zone: a }]
`, b.addr, b.addr, b.addr)))
	perTry := func() map[string]instance.PerTry {
		out := map[string]instance.PerTry{}
		for _, p := range obsGetStatus(t, admin, "").Pools {
			out[p.Name] = p.PerTry
		}
		return out
	}
	got := perTry()
	for name, want := range map[string]instance.PerTry{
		"web":   {Mode: "auto", Seconds: 1},
		"fixed": {Mode: "fixed", Seconds: 0.25},
		"none":  {Mode: "off"},
	} {
		if got[name] != want {
			t.Errorf("pool %s: per_try %+v, want %+v", name, got[name], want)
		}
	}
	fams := obsScrape(t, admin, "")
	if v := obsValue(t, fams, "azimuth_per_try_timeout_seconds", map[string]string{"pool": "fixed", "mode": "fixed"}); v != 0.25 {
		t.Errorf("gauge of the fixed pool = %v, want 0.25", v)
	}

	// Fast answers: the learned value falls to the 20ms floor once a
	// window slice with enough samples has passed.
	addr := obsListener(t, admin, "", "http")
	c := &http.Client{Timeout: 5 * time.Second}
	testwait.Until(t, 20*time.Second, "the learned per-try timeout", func() bool {
		for range 60 {
			resp, err := c.Get("http://" + addr + "/")
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		return perTry()["web"].Seconds < 1
	})
	if p := perTry()["web"]; p.Mode != "auto" || p.Seconds < 0.02 || p.Seconds > 0.2 {
		t.Errorf("learned per_try %+v, want auto near the 20ms floor for a loopback backend", p)
	}
	fams = obsScrape(t, admin, "")
	if v := obsValue(t, fams, "azimuth_per_try_timeout_seconds", map[string]string{"pool": "web", "mode": "auto"}); v >= 1 || v < 0.02 {
		t.Errorf("gauge of the learning pool = %v, want the learned value", v)
	}
}

// An operator who drains a zone through the admin API moves the requests
// still waiting on it at once, with the pool's defaults: a GET held by a
// hung backend is answered from another zone right after the drain, long
// before its per-try time.
func TestDrainMovesWaitingRequests(t *testing.T) {
	dir := t.TempDir()
	hung := obsBackend(t, "127.0.1.1", obsHung(t))
	ok := obsBackend(t, "127.0.2.1", obsNamed("b"))
	_, admin := obsStart(t, obsConfig(t, dir, fmt.Sprintf(`log: { access_log: { output: "off" } }
pools:
  - name: web
    timeouts: { per_try: 20s }
    backends: [{ address: %s, zone: a }, { address: %s, zone: b }]
`, hung.addr, ok.addr)))
	addr := obsListener(t, admin, "", "http")
	type answer struct {
		body string
		err  error
		at   time.Time
	}
	done := make(chan answer, 1)
	go func() {
		c := &http.Client{Timeout: 15 * time.Second}
		resp, err := c.Get("http://" + addr + "/")
		if err != nil {
			done <- answer{err: err}
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- answer{body: string(body), at: time.Now()}
	}()
	testwait.Until(t, 5*time.Second, "the request to wait on zone a", func() bool {
		for _, p := range obsGetStatus(t, admin, "").Pools {
			for _, b := range p.Backends {
				if b.Address == hung.addr && b.InFlight == 1 {
					return true
				}
			}
		}
		return false
	})
	drained := time.Now()
	if code, body := obsDo(t, "POST", "http://"+admin+"/pools/web/zones/a/drain", ""); code != http.StatusOK {
		t.Fatalf("drain: %d %s", code, body)
	}
	a := <-done
	if a.err != nil || a.body != "b" || a.at.Sub(drained) > 2*time.Second {
		t.Fatalf("answer %q (%v) %v after the drain, want zone b's at once", a.body, a.err, a.at.Sub(drained))
	}
	fams := obsScrape(t, admin, "")
	if v := obsValue(t, fams, "azimuth_retries_total", map[string]string{"pool": "web", "from_zone": "a", "to_zone": "b", "cause": "backend_out"}); v != 1 {
		t.Errorf("retries for backend_out = %v, want 1", v)
	}
}
