package proxy

import (
	"bytes"
	"encoding/json"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/balancer"
	"github.com/azimuthproxy/azimuth/internal/testwait"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// A per-try timeout hedges rather than aborts: the hung first attempt keeps
// running until the hedge in another zone answers, then it is cancelled
// and its connection closed, and it counts against its backend.
func TestHedgeWinsAndCancelsTheHungAttempt(t *testing.T) {
	f := startFleet(t, 1, nil)
	a := f.byZone["a"][0]
	a.mode.Store(modeHang)
	obs := &recordingObserver{failures: map[string]int{}}
	px := startProxy(t, testPool(f, func(pc *PoolConfig) {
		pc.Outlier = obs
		pc.Timeouts.PerTry = 100 * time.Millisecond
	}))
	start := time.Now()
	code, zone, body := get(t, http.DefaultClient, "GET", px.URL+"/", nil, nil)
	took := time.Since(start)
	if code != 200 || zone == "a" || !strings.HasPrefix(body, "hello from 127.0.") {
		t.Fatalf("status %d from zone %q (%q), want 200 from b or c", code, zone, body)
	}
	if took < 100*time.Millisecond || took > 2*time.Second {
		t.Errorf("answered after %v, want just past the 100ms per-try time", took)
	}
	testwait.Until(t, 5*time.Second, "the hung attempt's connection to close", func() bool { return a.gone.Load() == 1 })
	m := px.metrics
	for _, c := range []struct {
		name string
		got  float64
		want float64
	}{
		{"hedges won", testutil.ToFloat64(m.hedges.WithLabelValues("app", "won")), 1},
		{"hedges lost", testutil.ToFloat64(m.hedges.WithLabelValues("app", "lost")), 0},
		{"zone a attempts timed out", testutil.ToFloat64(m.attempts.WithLabelValues("app", "a", "timeout")), 1},
		{"passive failures of zone a", float64(obs.failures[a.addr]), 1},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

// A legitimately slow request is not failed by a tight per-try time: its
// hedges are as slow, the first attempt answers first and wins, and
// nothing counts against any backend.
func TestSlowRequestSucceedsThroughHedges(t *testing.T) {
	f := startFleet(t, 1, nil)
	for _, b := range f.all {
		b.delay.Store(int64(600 * time.Millisecond))
	}
	obs := &recordingObserver{failures: map[string]int{}}
	px := startProxy(t, testPool(f, func(pc *PoolConfig) {
		pc.Outlier = obs
		pc.Timeouts.PerTry = 50 * time.Millisecond
	}))
	start := time.Now()
	code, zone, _ := get(t, http.DefaultClient, "GET", px.URL+"/export", nil, nil)
	if took := time.Since(start); code != 200 || zone != "a" || took > 3*time.Second {
		t.Fatalf("status %d from zone %q after %v, want 200 from the first attempt in zone a after about 600ms", code, zone, took)
	}
	if got := testutil.ToFloat64(px.metrics.hedges.WithLabelValues("app", "lost")); got != 2 {
		t.Errorf("hedges lost = %v, want 2 (attempts: 3)", got)
	}
	if n := obs.totalFailures(); n != 0 {
		t.Errorf("%d failures counted: a hedge that loses to an earlier attempt is no failure", n)
	}
	if n := f.hits("b") + f.hits("c"); n != 2 {
		t.Errorf("zones b and c saw %d hedges, want 2", n)
	}
}

// A request that cannot be replayed has a single attempt until the
// request's deadline: no hedge, no second backend, and the refusal says
// why.
func TestNonReplayableRequestNeverHedges(t *testing.T) {
	f := startFleet(t, 1, nil)
	f.byZone["a"][0].mode.Store(modeHang)
	px := startProxy(t, testPool(f, func(pc *PoolConfig) {
		pc.Timeouts.PerTry = 50 * time.Millisecond
		pc.Timeouts.Request = 500 * time.Millisecond
	}))
	start := time.Now()
	code, _, _ := get(t, http.DefaultClient, "POST", px.URL+"/orders", strings.NewReader(`{"n":1}`), nil)
	if took := time.Since(start); code != http.StatusGatewayTimeout || took < 450*time.Millisecond {
		t.Fatalf("status %d after %v, want 504 at the 500ms request deadline", code, took)
	}
	if n := f.hits("b") + f.hits("c"); n != 0 {
		t.Errorf("the POST reached %d other backends", n)
	}
	m := px.metrics
	if got := testutil.ToFloat64(m.hedges.WithLabelValues("app", "won")) + testutil.ToFloat64(m.hedges.WithLabelValues("app", "lost")); got != 0 {
		t.Errorf("%v hedges of a POST", got)
	}
	if got := testutil.ToFloat64(m.refusals.WithLabelValues("app", RefusedNotReplayable)); got != 1 {
		t.Errorf("retries refused as not_replayable = %v, want 1", got)
	}
}

// When health or an operator takes a backend out, its replayable attempts
// still waiting for their response move at once, long before their
// per-try time.
func TestAttemptsMoveWhenTheirBackendGoesOut(t *testing.T) {
	cases := []struct {
		name string
		out  func(p *balancer.Pool, b *testBackend)
	}{
		{"ejected", func(p *balancer.Pool, b *testBackend) { p.Backend(b.addr).SetState(balancer.StateEjected) }},
		{"down", func(p *balancer.Pool, b *testBackend) { p.Backend(b.addr).SetState(balancer.StateDown) }},
		{"drained", func(p *balancer.Pool, b *testBackend) { p.Backend(b.addr).SetDrained(true) }},
		{"zone drained", func(p *balancer.Pool, b *testBackend) { p.SetZoneDrained("a", true) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := startFleet(t, 1, nil)
			a := f.byZone["a"][0]
			a.mode.Store(modeHang)
			pc := testPool(f, func(pc *PoolConfig) { pc.Timeouts.PerTry = 10 * time.Second })
			px := startProxy(t, pc)
			type answer struct {
				code int
				zone string
				at   time.Time
			}
			done := make(chan answer, 1)
			go func() {
				req, _ := http.NewRequest("GET", px.URL+"/", nil)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					done <- answer{}
					return
				}
				resp.Body.Close()
				done <- answer{resp.StatusCode, resp.Header.Get("X-Backend-Zone"), time.Now()}
			}()
			testwait.Until(t, 5*time.Second, "the request to reach zone a", func() bool { return a.hits.Load() == 1 })
			outAt := time.Now()
			c.out(pc.Balancer, a)
			var got answer
			select {
			case got = <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("no answer 5s after the backend went out: the attempt waited for its 10s per-try time")
			}
			if got.code != 200 || got.zone == "a" || got.at.Sub(outAt) > 2*time.Second {
				t.Fatalf("status %d from zone %q %v after the backend went out, want 200 from b or c at once", got.code, got.zone, got.at.Sub(outAt))
			}
			if n := testutil.ToFloat64(px.metrics.retries.WithLabelValues("app", "a", "b", "backend_out")) +
				testutil.ToFloat64(px.metrics.retries.WithLabelValues("app", "a", "c", "backend_out")); n != 1 {
				t.Errorf("retries from a for backend_out = %v, want 1", n)
			}
		})
	}
}

// Every refused retry says why, in the access log and in
// azimuth_retries_refused_total.
func TestRefusedRetriesSayWhy(t *testing.T) {
	cases := []struct {
		name   string
		method string
		body   string
		pool   func(pc *PoolConfig, f *fleet)
		want   string
		code   int
	}{
		{"budget", "GET", "", func(pc *PoolConfig, f *fleet) {
			pc.Retry.BudgetPercent, pc.Retry.BudgetMinPerSecond = 0, 0
		}, RefusedBudget, 503},
		{"not replayable", "POST", "x", nil, RefusedNotReplayable, 503},
		{"body too large", "PUT", strings.Repeat("x", 2000), func(pc *PoolConfig, f *fleet) { pc.Retry.MaxBody = 1000 }, RefusedBodyTooLarge, 503},
		{"attempts spent", "GET", "", func(pc *PoolConfig, f *fleet) {
			for _, b := range f.all {
				b.mode.Store(modeStatus)
			}
		}, RefusedAttemptsSpent, 503},
		{"no backend", "GET", "", func(pc *PoolConfig, f *fleet) {
			bp := balancer.NewPool("app", balancer.Options{LocalZone: "a"})
			bp.Update([]balancer.Spec{{Address: f.byZone["a"][0].addr, Zone: "a"}})
			pc.Balancer = bp
		}, RefusedNoBackend, 503},
		{"deadline", "GET", "", func(pc *PoolConfig, f *fleet) {
			f.byZone["a"][0].mode.Store(modeHang)
			pc.Timeouts.PerTry = 0
			pc.Timeouts.Request = 200 * time.Millisecond
		}, RefusedDeadline, 504},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := startFleet(t, 1, nil)
			f.byZone["a"][0].mode.Store(modeStatus)
			pc := testPool(f, nil)
			if c.pool != nil {
				c.pool(&pc, f)
			}
			var log syncBuffer
			px := startProxyLogging(t, ListenerConfig{Name: "http", Routes: []Route{{Pool: "app"}}}, NewJSONAccessLog(&log, 1), pc)
			var body *strings.Reader
			if c.body != "" {
				body = strings.NewReader(c.body)
			}
			req, _ := http.NewRequest(c.method, px.URL+"/", nil)
			if body != nil {
				req, _ = http.NewRequest(c.method, px.URL+"/", body)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != c.code {
				t.Errorf("status %d, want %d", resp.StatusCode, c.code)
			}
			if got := testutil.ToFloat64(px.metrics.refusals.WithLabelValues("app", c.want)); got < 1 {
				t.Errorf("azimuth_retries_refused_total{reason=%q} = %v, want at least 1", c.want, got)
			}
			var line struct {
				Refused string `json:"retry_refused"`
			}
			testwait.Until(t, 2*time.Second, "the access-log line", func() bool { return log.Len() > 0 })
			if err := json.Unmarshal(bytes.TrimSpace(log.Bytes()), &line); err != nil {
				t.Fatalf("access log %q: %v", log.String(), err)
			}
			if line.Refused != c.want {
				t.Errorf("access log retry_refused = %q, want %q (%s)", line.Refused, c.want, log.String())
			}
		})
	}
}

// After an ejection, the backend's trial request is a replayable one, and
// only one: a POST never tries a backend that may still hang.
func TestTrialRequestIsReplayable(t *testing.T) {
	f := startFleet(t, 1, nil)
	pc := testPool(f, nil)
	b := pc.Balancer.Backend(f.byZone["a"][0].addr)
	b.SetState(balancer.StateEjected)
	b.OpenTrial()
	px := startProxy(t, pc)
	if code, zone, _ := get(t, http.DefaultClient, "POST", px.URL+"/", strings.NewReader("x"), nil); code != 200 || zone == "a" {
		t.Fatalf("POST: status %d from zone %q, want 200 from b or c: a POST is no trial", code, zone)
	}
	if code, zone, _ := get(t, http.DefaultClient, "GET", px.URL+"/", nil, nil); code != 200 || zone != "a" {
		t.Fatalf("GET: status %d from zone %q, want 200 from the ejected backend on trial", code, zone)
	}
	if !b.Trial() || b.TrialRunning() {
		t.Errorf("after a trial request nobody judged: open %v, running %v; want open again", b.Trial(), b.TrialRunning())
	}
}

// Passive health counts the statuses of its own list, whatever the retry
// policy retries.
func TestPassiveCountsItsOwnStatuses(t *testing.T) {
	for _, c := range []struct {
		status int
		failed bool
	}{{500, true}, {504, true}, {404, false}, {503, true}} {
		f := startFleet(t, 1, nil)
		a := f.byZone["a"][0]
		a.mode.Store(modeStatus)
		a.status.Store(int32(c.status))
		obs := &recordingObserver{failures: map[string]int{}}
		px := startProxy(t, testPool(f, func(pc *PoolConfig) {
			pc.Outlier = obs
			pc.Retry.Statuses = nil
			pc.Retry.On[CauseStatus] = false
			pc.FailStatuses = []int{500, 502, 503, 504}
		}))
		code, _, _ := get(t, http.DefaultClient, "GET", px.URL+"/", nil, nil)
		if code != c.status {
			t.Fatalf("status %d, want the backend's %d", code, c.status)
		}
		if got := obs.failures[a.addr] == 1; got != c.failed {
			t.Errorf("status %d counted as a failure: %v, want %v", c.status, got, c.failed)
		}
	}
}

// Many requests hedging at once away from a hung zone all succeed, and
// every goroutine of theirs ends.
func TestHedgesUnderConcurrency(t *testing.T) {
	f := startFleet(t, 2, nil)
	for _, b := range f.byZone["a"] {
		b.mode.Store(modeHang)
	}
	pc := testPool(f, func(pc *PoolConfig) {
		pc.Timeouts.PerTry = 20 * time.Millisecond
		pc.Retry.BudgetMinPerSecond = 100
	})
	px := startProxy(t, pc)
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	// One request first: the server's own goroutines start with the first
	// connection, and belong to the baseline.
	if code, _, _ := get(t, c, "GET", px.URL+"/", nil, nil); code != 200 {
		t.Fatalf("first request: status %d", code)
	}
	baseline := runtime.NumGoroutine()
	const n = 200
	var wg sync.WaitGroup
	codes := make([]int, n)
	for i := range n {
		wg.Go(func() {
			resp, err := c.Get(px.URL + "/")
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			codes[i] = resp.StatusCode
		})
	}
	wg.Wait()
	for i, code := range codes {
		if code != 200 {
			t.Fatalf("request %d: status %d", i, code)
		}
	}
	c.CloseIdleConnections()
	pc.Transport.(interface{ CloseIdleConnections() }).CloseIdleConnections()
	// Every hung attempt was cut when its hedge won.
	hung := f.byZone["a"][0].hits.Load() + f.byZone["a"][1].hits.Load()
	if hung < n/2 {
		t.Fatalf("zone a saw %d of %d first attempts", hung, n)
	}
	testwait.Until(t, 5*time.Second, "the hung attempts' connections to close", func() bool {
		return f.byZone["a"][0].gone.Load()+f.byZone["a"][1].gone.Load() == hung
	})
	checkNoLeak(t, baseline)
}

// syncBuffer is a bytes.Buffer safe for the access log's writes and the
// test's reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) Len() int { b.mu.Lock(); defer b.mu.Unlock(); return b.buf.Len() }

func (b *syncBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]byte(nil), b.buf.Bytes()...)
}

func (b *syncBuffer) String() string { return string(b.Bytes()) }
