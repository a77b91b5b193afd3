package proxy

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/internal/testwait"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// A zone whose backends accept and read requests but never answer: every GET
// succeeds in another zone, none slower than per_try plus normal latency.
func TestHungZoneRedispatchesGETs(t *testing.T) {
	f := startFleet(t, 2, nil)
	for _, b := range f.byZone["a"] {
		b.mode.Store(modeHang)
	}
	obs := &recordingObserver{failures: map[string]int{}}
	pc := testPool(f, func(pc *PoolConfig) { pc.Outlier = obs })
	px := startProxy(t, pc)
	c := &http.Client{Timeout: 5 * time.Second}
	for i := range 20 {
		start := time.Now()
		code, zone, _ := get(t, c, "GET", px.URL+"/x", nil, nil)
		took := time.Since(start)
		if code != 200 {
			t.Fatalf("request %d: status %d, want 200", i, code)
		}
		if zone == "a" || zone == "" {
			t.Fatalf("request %d answered by zone %q, want b or c", i, zone)
		}
		if limit := pc.Timeouts.PerTry + time.Second; took > limit {
			t.Fatalf("request %d took %v, over per_try+1s (%v)", i, took, limit)
		}
	}
	if f.hits("a") != 20 {
		t.Errorf("hung zone saw %d first attempts, want 20", f.hits("a"))
	}
	if got := testutil.ToFloat64(px.metrics.retries.WithLabelValues("app", "a", "b", "timeout")) +
		testutil.ToFloat64(px.metrics.retries.WithLabelValues("app", "a", "c", "timeout")); got != 20 {
		t.Errorf("retries from a by timeout = %v, want 20", got)
	}
	if obs.totalFailures() != 20 {
		t.Errorf("passive health saw %d failures, want 20", obs.totalFailures())
	}
}

// A zone whose listeners are closed: every GET succeeds elsewhere.
func TestRefusingZoneRedispatches(t *testing.T) {
	f := startFleet(t, 2, nil)
	for _, b := range f.byZone["a"] {
		b.refuse()
	}
	px := startProxy(t, testPool(f, nil))
	c := &http.Client{Timeout: 5 * time.Second}
	for i := range 20 {
		code, zone, _ := get(t, c, "GET", px.URL+"/", nil, nil)
		if code != 200 || zone == "a" {
			t.Fatalf("request %d: status %d from zone %q", i, code, zone)
		}
	}
	if got := testutil.ToFloat64(px.metrics.attempts.WithLabelValues("app", "a", "connect_failure")); got != 20 {
		t.Errorf("connect failures in zone a = %v, want 20", got)
	}
}

// A POST may be sent twice only if it carries the idempotency key.
func TestPOSTToHungBackend(t *testing.T) {
	f := startFleet(t, 1, nil)
	hung := f.byZone["a"][0]
	hung.mode.Store(modeHang)
	px := startProxy(t, testPool(f, nil))
	c := &http.Client{Timeout: 5 * time.Second}

	code, _, _ := get(t, c, "POST", px.URL+"/orders", strings.NewReader(`{"n":1}`), nil)
	if code != http.StatusGatewayTimeout {
		t.Fatalf("POST without key: status %d, want 504", code)
	}
	if n := hung.methodHits("POST"); n != 1 {
		t.Fatalf("hung backend saw the POST %d times, want exactly 1", n)
	}
	if n := f.hits("b") + f.hits("c"); n != 0 {
		t.Fatalf("POST without key reached %d other backends, want 0", n)
	}

	code, zone, _ := get(t, c, "POST", px.URL+"/orders", strings.NewReader(`{"n":2}`),
		http.Header{"Idempotency-Key": {"k-2"}})
	if code != 200 || zone == "a" {
		t.Fatalf("POST with key: status %d from zone %q, want 200 from b or c", code, zone)
	}
}

// A listed status is retried; an unlisted one passes through.
func TestStatusRetry(t *testing.T) {
	for _, tc := range []struct {
		name     string
		statuses []int
		want     int
		wantZone string
	}{
		{"503 listed", []int{503}, 200, "other"},
		{"503 not listed", []int{502}, 503, "a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := startFleet(t, 1, nil)
			f.byZone["a"][0].mode.Store(modeStatus)
			px := startProxy(t, testPool(f, func(pc *PoolConfig) { pc.Retry.Statuses = tc.statuses }))
			code, zone, _ := get(t, http.DefaultClient, "GET", px.URL+"/", nil, nil)
			if code != tc.want {
				t.Fatalf("status %d, want %d", code, tc.want)
			}
			if (tc.wantZone == "a") != (zone == "a") {
				t.Fatalf("answered by zone %q, want %s", zone, tc.wantZone)
			}
		})
	}
}

// A body over max_body is proxied whole but never replayed.
func TestLargeBodyNotRetried(t *testing.T) {
	f := startFleet(t, 1, nil)
	a := f.byZone["a"][0]
	a.mode.Store(modeStatus)
	px := startProxy(t, testPool(f, func(pc *PoolConfig) { pc.Retry.MaxBody = 1024 }))
	for _, tc := range []struct {
		name      string
		size      int
		chunked   bool
		want      int
		wantAHits int64
	}{
		{"small body retried", 100, false, 200, 1},
		{"large body passed through", 4096, false, 503, 2},
		{"large chunked body passed through", 4096, true, 503, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body interface{ Read([]byte) (int, error) } = bytes.NewReader(make([]byte, tc.size))
			if tc.chunked {
				body = struct{ *bytes.Reader }{bytes.NewReader(make([]byte, tc.size))} // hides Len: no Content-Length
			}
			code, _, _ := get(t, http.DefaultClient, "PUT", px.URL+"/blob", body, nil)
			if code != tc.want {
				t.Fatalf("status %d, want %d", code, tc.want)
			}
			if a.hits.Load() != tc.wantAHits {
				t.Fatalf("zone a saw %d requests, want %d", a.hits.Load(), tc.wantAHits)
			}
		})
	}
}

// A client that goes away cancels the attempt: no retry, no failure held
// against the backend.
func TestClientCancelNotRetried(t *testing.T) {
	f := startFleet(t, 1, nil)
	f.byZone["a"][0].mode.Store(modeHang)
	obs := &recordingObserver{failures: map[string]int{}}
	px := startProxy(t, testPool(f, func(pc *PoolConfig) {
		pc.Outlier = obs
		pc.Timeouts.PerTry = 2 * time.Second
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", px.URL+"/", nil)
	if _, err := http.DefaultClient.Do(req); err == nil {
		t.Fatal("request succeeded, want the client's own timeout")
	}
	// The proxy notices the client left when its connection closes.
	testwait.Until(t, 3*time.Second, "the proxy to record the cancelled request", func() bool {
		return testutil.ToFloat64(px.metrics.requests.WithLabelValues("http", "app", "499")) == 1
	})
	if n := f.hits("b") + f.hits("c"); n != 0 {
		t.Errorf("cancelled request was retried to %d backends", n)
	}
	if n := obs.totalFailures(); n != 0 {
		t.Errorf("cancelled request counted %d failures against the backend", n)
	}
}

// With every backend failing, retries stay within the budget: percent of
// the requests plus the reserve (min_per_second × window), whatever the
// concurrency.
func TestRetryBudgetBoundsStorm(t *testing.T) {
	f := startFleet(t, 2, nil)
	for _, b := range f.all { // 503 after a delay, so requests overlap
		b.mode.Store(modeStatus)
		b.delay.Store(int64(50 * time.Millisecond))
	}
	const n = 40
	px := startProxy(t, testPool(f, func(pc *PoolConfig) {
		pc.Timeouts.PerTry = 2 * time.Second
		pc.Retry.BudgetMinPerSecond = 1
	}))
	var wg sync.WaitGroup
	start := time.Now()
	codes := make([]int, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Get(px.URL + "/")
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			codes[i] = resp.StatusCode
		}()
	}
	wg.Wait()
	took := time.Since(start)
	var attempts int64
	for _, b := range f.all {
		attempts += b.hits.Load()
	}
	limit := int64(n*20/100 + 1*10) // 20% of the requests, and 1 a second over a 10s window
	if maxAttempts := n + limit; attempts > maxAttempts {
		t.Errorf("%d attempts for %d requests, over the budget's bound %d", attempts, n, maxAttempts)
	}
	if attempts <= n {
		t.Errorf("%d attempts for %d requests: the budget allowed no retry at all", attempts, n)
	}
	if got := testutil.ToFloat64(px.metrics.refusals.WithLabelValues("app", "budget")); got == 0 {
		t.Errorf("no retry refused for the budget")
	}
	for i, c := range codes {
		if c != 503 {
			t.Errorf("request %d: status %d, want the backends' 503", i, c)
		}
	}
	if took > 5*time.Second {
		t.Errorf("the storm took %v to answer", took)
	}
}
