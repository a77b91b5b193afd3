package main

import (
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/internal/testwait"
)

// between counts the requests b got in [from, to).
func between(b *passiveBackend, from, to time.Time) int {
	n := 0
	for _, a := range b.arrivals(from) {
		if a < to.Sub(from) {
			n++
		}
	}
	return n
}

// activeInfo is a backend's health as /status shows it.
type activeInfo struct {
	Address        string `json:"address"`
	State          string `json:"state"`
	CheckSuccesses int    `json:"check_successes"`
	CheckFailures  int    `json:"check_failures"`
}

func activeBackendInfo(t *testing.T, admin, addr string) activeInfo {
	t.Helper()
	var st struct {
		Pools []struct {
			Backends []activeInfo `json:"backends"`
		} `json:"pools"`
	}
	consulGetJSON(t, "http://"+admin+"/status", &st)
	for _, p := range st.Pools {
		for _, b := range p.Backends {
			if b.Address == addr {
				return b
			}
		}
	}
	t.Fatalf("backend %s not in /status", addr)
	return activeInfo{}
}

// TestActiveHealthWithoutTraffic runs the binary with the health settings
// the health issue sets its targets for (interval 1s, fall 2, rise 2) and
// no traffic: a backend that starts hanging, checks included, goes down
// after exactly fall failed checks, each cut at its timeout; back, it comes
// up after rise passing checks, and then ramps through slow start: while
// its weight is low it loses to its idle sibling, so its share of a light
// load starts small and grows. The times are logged, to measure (the
// bound is about (interval + (fall-1) × interval) × 1.1 + timeout; the
// test does not time it).
func TestActiveHealthWithoutTraffic(t *testing.T) {
	const slowStart = 2 * time.Second
	target, sibling := &passiveBackend{}, &passiveBackend{}
	tAddr := obsBackend(t, "127.0.1.41", target).addr
	sAddr := obsBackend(t, "127.0.1.42", sibling).addr
	bAddr := obsBackend(t, "127.0.2.41", &passiveBackend{}).addr
	config := obsConfig(t, t.TempDir(), fmt.Sprintf(`pools:
  - name: web
    slow_start: %v
    timeouts: { connect: 200ms, per_try: 500ms, request: 3s }
    health:
      active: { path: /healthz, interval: 1s, timeout: 250ms, rise: 2, fall: 2 }
      passive: { consecutive_failures: 5 }
    backends:
      - { address: %s, zone: a }
      - { address: %s, zone: a }
      - { address: %s, zone: b }
`, slowStart, tAddr, sAddr, bAddr))
	_, admin := obsStart(t, config)
	url := "http://" + obsListener(t, admin, "", "http") + "/"
	testwait.Until(t, 5*time.Second, "a first passing check of the backend", func() bool {
		return activeBackendInfo(t, admin, tAddr).CheckSuccesses >= 1
	})

	target.hung.Store(true)
	hungAt := time.Now()
	testwait.Until(t, 10*time.Second, "the hung backend to go down", func() bool {
		return activeBackendInfo(t, admin, tAddr).State == "down"
	})
	down := time.Since(hungAt)
	if i := activeBackendInfo(t, admin, tAddr); i.CheckFailures != 2 {
		t.Errorf("down after %d failed checks, want fall 2", i.CheckFailures)
	}

	target.hung.Store(false)
	backAt := time.Now()
	testwait.Until(t, 10*time.Second, "the backend to come back up", func() bool {
		return activeBackendInfo(t, admin, tAddr).State == "up"
	})
	upAt := time.Now()
	up := upAt.Sub(backAt)
	if i := activeBackendInfo(t, admin, tAddr); i.CheckSuccesses != 2 {
		t.Errorf("up after %d passing checks, want rise 2", i.CheckSuccesses)
	}

	// A light load through slow start and after it: 4 clients, one
	// request each every 5ms, for slow start plus a second.
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	defer client.CloseIdleConnections()
	var failed atomic.Int64
	end := upAt.Add(slowStart + time.Second)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(end) {
				if !getOK(t, client, url) {
					failed.Add(1)
				}
				time.Sleep(5 * time.Millisecond) // pacing of the client loop
			}
		}()
	}
	wg.Wait()
	if n := failed.Load(); n != 0 {
		t.Errorf("%d requests failed", n)
	}
	// Its share of zone a's requests in each half second from coming up.
	var shares []float64
	for w := upAt; w.Before(end.Add(-time.Millisecond)); w = w.Add(500 * time.Millisecond) {
		n, m := between(target, w, w.Add(500*time.Millisecond)), between(sibling, w, w.Add(500*time.Millisecond))
		if n+m == 0 {
			t.Fatalf("no request reached zone a in the half second from %v", w.Sub(upAt))
		}
		shares = append(shares, float64(n)/float64(n+m))
	}
	firstRequest := time.Duration(-1)
	if got := target.arrivals(backAt); len(got) > 0 {
		firstRequest = got[0]
	}
	t.Logf("hang to down %v; recovery to up %v, to its first request %v; its share of zone a per half second from up: %.2f",
		down.Round(time.Millisecond), up.Round(time.Millisecond), firstRequest.Round(time.Millisecond), shares)
	first, last := shares[0], shares[len(shares)-1]
	// In the first half second its weight is 10% to 32% of its sibling's
	// (0.25 would be a third of the split); after slow start they are even.
	if first > 0.25 || last < 0.3 || first >= last {
		t.Errorf("share %.2f in the first half second and %.2f after slow start: want a ramp from a small share to near an even split", first, last)
	}
}
