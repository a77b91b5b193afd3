package proxy

import (
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/balancer"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// hedgesStarted sums the pool's hedges, won and lost.
func hedgesStarted(px *testProxy) float64 {
	return testutil.ToFloat64(px.metrics.hedges.WithLabelValues("app", "won")) +
		testutil.ToFloat64(px.metrics.hedges.WithLabelValues("app", "lost"))
}

// With a hedge delay, a slow (not dead) zone's request gets a hedge in
// another zone after the delay, long before its per-try time; the slow
// attempt, overtaken within its per-try time, counts against nothing. A
// request that cannot be replayed never hedges.
func TestHedgeByDelay(t *testing.T) {
	f := startFleet(t, 1, nil)
	a := f.byZone["a"][0]
	a.delay.Store(int64(500 * time.Millisecond))
	for _, tc := range []struct {
		name   string
		hedge  Hedge
		method string
		zone   func(string) bool
		hedges float64
		min    time.Duration
		max    time.Duration
	}{
		{"off: the slow zone answers", Hedge{}, "GET", func(z string) bool { return z == "a" }, 0, 500 * time.Millisecond, 2 * time.Second},
		{"50ms: another zone answers", Hedge{Max: 1, Delay: 50 * time.Millisecond}, "GET", func(z string) bool { return z != "a" }, 1, 50 * time.Millisecond, 400 * time.Millisecond},
		{"a POST without a key waits", Hedge{Max: 1, Delay: 50 * time.Millisecond}, "POST", func(z string) bool { return z == "a" }, 0, 500 * time.Millisecond, 2 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			obs := &recordingObserver{failures: map[string]int{}}
			px := startProxy(t, testPool(f, func(pc *PoolConfig) {
				pc.Outlier = obs
				pc.Timeouts.PerTry = 2 * time.Second
				pc.Hedge = tc.hedge
			}))
			start := time.Now()
			code, zone, _ := get(t, http.DefaultClient, tc.method, px.URL+"/", strings.NewReader("x"), nil)
			took := time.Since(start)
			if code != 200 || !tc.zone(zone) || took < tc.min || took > tc.max {
				t.Fatalf("%s: %d from zone %q after %v", tc.method, code, zone, took)
			}
			if got := hedgesStarted(px); got != tc.hedges {
				t.Errorf("hedges = %v, want %v", got, tc.hedges)
			}
			if n := obs.totalFailures(); n != 0 {
				t.Errorf("%d failures counted; an attempt overtaken within its per-try time is no failure", n)
			}
		})
	}
}

// hedge.max bounds the hedges by delay of one request: with every zone
// slow, one request starts max of them, and no more before its per-try
// time.
func TestHedgeByDelayMax(t *testing.T) {
	f := startFleet(t, 1, nil)
	for _, b := range f.all {
		b.delay.Store(int64(400 * time.Millisecond))
	}
	for _, max := range []int{1, 2} {
		px := startProxy(t, testPool(f, func(pc *PoolConfig) {
			pc.Timeouts.PerTry = 2 * time.Second
			pc.Hedge = Hedge{Max: max, Delay: 50 * time.Millisecond}
		}))
		if code, _, _ := get(t, http.DefaultClient, "GET", px.URL+"/", nil, nil); code != 200 {
			t.Fatalf("max %d: status %d", max, code)
		}
		if got := hedgesStarted(px); got != float64(max) {
			t.Errorf("max %d: %v hedges started", max, got)
		}
	}
}

// One zone ten times slower than the others, not dead: least_conn already
// sends it few requests, and those few make the pool's tail. With hedge
// delay auto the tail is cut to about the fast zones' latency plus the
// learned delay, and the hedges stay within the retry budget. Latencies
// are the backends' sleeps (20ms, 200ms), so the bounds have wide
// margins.
func TestHedgeAutoCutsASlowZonesTail(t *testing.T) {
	const fast, slow = 20 * time.Millisecond, 200 * time.Millisecond
	f := startFleet(t, 2, nil)
	for _, b := range f.all {
		b.delay.Store(int64(fast))
	}
	for _, b := range f.byZone["c"] {
		b.delay.Store(int64(slow))
	}
	run := func(h Hedge) (p99 time.Duration, hedges, requests float64, delay time.Duration) {
		px := startProxy(t, testPool(f, func(pc *PoolConfig) {
			bp := balancer.NewPool("app", balancer.Options{PenaltyHalfLife: time.Second})
			bp.Update(f.specs())
			pc.Balancer = bp
			pc.Timeouts.PerTry = 2 * time.Second
			pc.Hedge = h
		}))
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
		defer client.CloseIdleConnections()
		// Warm up: the delay is learned from a zone with 20 samples in
		// the window, once a new half second begins; until the fast
		// zones have theirs, it may be the slow zone's (a late hedge,
		// not a wrong one).
		learned := func() bool { d := px.Current().Pool("app").HedgeDelay(); return d > 0 && d < slow/2 }
		deadline := time.Now().Add(10 * time.Second)
		for h.Auto && !learned() && time.Now().Before(deadline) {
			get(t, client, "GET", px.URL+"/", nil, nil)
		}
		if h.Auto && !learned() {
			t.Fatalf("hedge delay %v after 10s of requests, want one learned from the fast zones", px.Current().Pool("app").HedgeDelay())
		}
		before := hedgesStarted(px)
		const workers, each = 16, 60
		var mu sync.Mutex
		var took []time.Duration
		var wg sync.WaitGroup
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range each {
					start := time.Now()
					if code, _, _ := get(t, client, "GET", px.URL+"/", nil, nil); code != 200 {
						t.Errorf("status %d", code)
						return
					}
					mu.Lock()
					took = append(took, time.Since(start))
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		slices.Sort(took)
		slowOnes := 0
		for _, d := range took {
			if d >= slow {
				slowOnes++
			}
		}
		t.Logf("hedge %+v: %d of %d requests took the slow zone's %v or more", h, slowOnes, len(took), slow)
		for _, why := range []string{RefusedBudget, RefusedAttemptsSpent, RefusedNoBackend, RefusedDeadline} {
			if n := testutil.ToFloat64(px.metrics.refusals.WithLabelValues("app", why)); n > 0 {
				t.Logf("hedges refused (%s): %v", why, n)
			}
		}
		return took[len(took)*99/100], hedgesStarted(px) - before, float64(len(took)), px.Current().Pool("app").HedgeDelay()
	}

	off, _, _, _ := run(Hedge{})
	on, hedges, n, delay := run(Hedge{Max: 1, Auto: true})
	t.Logf("p99 without hedging %v; with hedge delay auto (%v) %v, %v hedges for %v requests", off, delay, on, hedges, n)
	if off < slow {
		t.Fatalf("without hedging p99 %v is below the slow zone's %v: the test shows nothing", off, slow)
	}
	if on > fast+delay+60*time.Millisecond {
		t.Errorf("with hedging p99 %v, want near the fast zones' %v plus the delay %v", on, fast, delay)
	}
	// Within the budget's share of requests (20%), without its reserve
	// of 10 a second: overtaken attempts make their slow backends look
	// busier, so least_conn keeps sending them few requests.
	if budget := 0.2 * n; hedges > budget {
		t.Errorf("%v hedges for %v requests, above the budget's %v", hedges, n, budget)
	}
	if delay <= 0 || delay >= slow {
		t.Errorf("learned hedge delay %v, want between 0 and the slow zone's latency", delay)
	}
}
