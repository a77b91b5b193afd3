package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// passiveBackend answers at once until hang, then holds every request,
// health checks included, until its client gives up, as a backend that
// hangs without refusing connections. It records when each request (not
// check) arrived.
type passiveBackend struct {
	hung atomic.Bool
	mu   sync.Mutex
	at   []time.Time
}

func (b *passiveBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/healthz" {
		b.mu.Lock()
		b.at = append(b.at, time.Now())
		b.mu.Unlock()
	}
	if b.hung.Load() {
		<-r.Context().Done()
		return
	}
	_, _ = io.WriteString(w, "ok")
}

// getOK sends a GET and reads the answer; it logs and returns false for a
// transport error or a status other than 200.
func getOK(t *testing.T, client *http.Client, url string) bool {
	resp, err := client.Get(url)
	if err != nil {
		t.Logf("request failed: %v", err)
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Logf("request answered %d", resp.StatusCode)
		return false
	}
	return true
}

// arrivals returns the arrival times of requests at or after from, as
// offsets from it.
func (b *passiveBackend) arrivals(from time.Time) []time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []time.Duration
	for _, a := range b.at {
		if !a.Before(from) {
			out = append(out, a.Sub(from))
		}
	}
	return out
}

// TestPassivePenaltyKeepsTrafficOffHungBackend runs the binary with only
// passive health (no active checks, so nothing else can move traffic) in
// front of six backends in three zones, and sends a steady 200 requests/s
// (AZIMUTH_PASSIVE_RATE sets another rate, to measure).
// One local backend starts hanging. Its first per-try timeout puts the
// failure penalty on it, so it takes no more first attempts for well over a
// second; without the penalty it would take one every per-try timeout
// (300ms) until its fifth failure ejected it. Every client request
// succeeds: the hung attempts are redispatched to another zone.
func TestPassivePenaltyKeepsTrafficOffHungBackend(t *testing.T) {
	const (
		perTry = 300 * time.Millisecond
		warmup = 300 * time.Millisecond
		after  = 1500 * time.Millisecond // load after the hang
	)
	rate := 200
	if s := os.Getenv("AZIMUTH_PASSIVE_RATE"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 || n > 5000 {
			t.Fatalf("AZIMUTH_PASSIVE_RATE=%q: want requests per second, 1 to 5000", s)
		}
		rate = n
	}
	hung := &passiveBackend{}
	var backends strings.Builder
	for z, zone := range []string{"a", "b", "c"} {
		for i := 1; i <= 2; i++ {
			var h http.Handler = &passiveBackend{}
			if z == 0 && i == 1 {
				h = hung
			}
			s := obsBackend(t, fmt.Sprintf("127.0.%d.%d", z+1, 30+i), h)
			fmt.Fprintf(&backends, "      - { address: %s, zone: %s }\n", s.addr, zone)
		}
	}
	config := obsConfig(t, t.TempDir(), `pools:
  - name: web
    timeouts: { connect: 200ms, per_try: 300ms, request: 3s }
    retry: { attempts: 3, on: [connect_failure, timeout, reset], budget: { percent: 100, min_per_second: 50 } }
    health:
      passive: { consecutive_failures: 5, ejection: 30s, penalty_half_life: 1s }
    backends:
`+backends.String())
	_, admin := obsStart(t, config)
	url := "http://" + obsListener(t, admin, "", "http") + "/"

	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	defer client.CloseIdleConnections()
	var failed atomic.Int64
	var sent int
	var wg sync.WaitGroup
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	var hungAt time.Time
	total := int((warmup + after) * time.Duration(rate) / time.Second)
	for i := range total {
		<-tick.C
		if i == int(warmup*time.Duration(rate)/time.Second) {
			hungAt = time.Now()
			hung.hung.Store(true)
		}
		sent++
		wg.Add(1)
		go func() {
			defer wg.Done()
			if !getOK(t, client, url) {
				failed.Add(1)
			}
		}()
	}
	wg.Wait()
	got := hung.arrivals(hungAt)
	t.Logf("%d requests at %d/s; the hung backend got first attempts at %v after it hung", sent, rate, got)
	if n := failed.Load(); n != 0 {
		t.Errorf("%d of %d client requests failed; every one should be redispatched", n, sent)
	}
	if len(got) == 0 {
		t.Fatal("the hung backend got no request after it hung: the test measured nothing")
	}
	// Its first timeout is at least perTry after its first hung request.
	firstFailure := got[0] + perTry
	var late []time.Duration
	for _, a := range got {
		if a > firstFailure {
			late = append(late, a)
		}
	}
	// The first failure costs 2 connections, the next 4: its sibling in
	// zone a would need that many requests in flight at once to tie. One
	// such tie on a loaded machine is tolerated; without the penalty it
	// would get one at about every 300ms, 3 or more in this window.
	if len(late) > 1 {
		t.Errorf("the hung backend got %d first attempts after its first timeout (at %v): %v", len(late), firstFailure, late)
	}
}
