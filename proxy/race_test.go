package proxy

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/balancer"
	"github.com/azimuthproxy/azimuth/internal/testwait"
)

// scriptedTransport answers by backend address, so a test can order the
// attempts of one request exactly.
type scriptedTransport struct {
	answer func(req *http.Request) (*http.Response, error)
}

func (s *scriptedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	return s.answer(req)
}

// okResponse is a 200 whose body counts its closes.
func okResponse(req *http.Request, closed *atomic.Int32) *http.Response {
	return &http.Response{StatusCode: 200, Status: "200 OK", Header: http.Header{}, ContentLength: 2,
		Body: countingBody{Reader: strings.NewReader("ok"), closed: closed}, ProtoMajor: 1, ProtoMinor: 1, Request: req}
}

type countingBody struct {
	io.Reader
	closed *atomic.Int32
}

func (c countingBody) Close() error { c.closed.Add(1); return nil }

// observerFunc is an Observer from a function.
type observerFunc func(b *balancer.Backend, failed bool)

func (f observerFunc) Observe(b *balancer.Backend, failed bool) { f(b, failed) }

// scriptedPool is a pool of one backend in each of zones a, b and c
// (10.0.0.1, .2, .3: nothing is dialed) over transport t.
func scriptedPool(t http.RoundTripper, obs Observer) PoolConfig {
	bp := balancer.NewPool("app", balancer.Options{LocalZone: "a"})
	bp.Update([]balancer.Spec{{Address: "10.0.0.1:80", Zone: "a"}, {Address: "10.0.0.2:80", Zone: "b"}, {Address: "10.0.0.3:80", Zone: "c"}})
	return PoolConfig{
		Name: "app", Balancer: bp, Transport: t, Scheme: "http", Outlier: obs,
		Timeouts: Timeouts{Connect: time.Second, PerTry: 20 * time.Millisecond, Request: 2 * time.Second},
		Retry: RetryPolicy{Attempts: 3, On: causes(CauseConnect, CauseTimeout, CauseReset, CauseStatus),
			MaxBody: 64 << 10, BudgetPercent: 20, BudgetMinPerSecond: 100, BudgetWindow: 10 * time.Second},
	}
}

// A retry decided by a hedge that failed, whose pick returns after the
// first attempt won, sends nothing: the client is not held until it ends.
func TestNoAttemptStartsAfterTheRaceIsWon(t *testing.T) {
	observing := make(chan struct{})
	var late atomic.Int32
	var won atomic.Bool
	var closed atomic.Int32
	st := &scriptedTransport{answer: func(req *http.Request) (*http.Response, error) {
		switch {
		case strings.HasPrefix(req.URL.Host, "10.0.0.1"): // the first attempt wins once the hedge failed
			<-observing
			won.Store(true)
			return okResponse(req, &closed), nil
		case strings.HasPrefix(req.URL.Host, "10.0.0.2"): // the hedge fails at once
			return nil, io.ErrUnexpectedEOF
		}
		if won.Load() { // the hedge's retry
			late.Add(1)
		}
		<-req.Context().Done()
		return nil, req.Context().Err()
	}}
	var once sync.Once
	obs := observerFunc(func(b *balancer.Backend, _ bool) {
		if b.Zone() == "b" {
			once.Do(func() { close(observing) })
			// Passive health takes its time (a lock, a log line): the
			// first attempt wins meanwhile, before the retry's pick.
			time.Sleep(100 * time.Millisecond)
		}
	})
	px := startProxy(t, scriptedPool(st, obs))
	start := time.Now()
	code, _, _ := get(t, http.DefaultClient, "GET", px.URL+"/", nil, nil)
	if took := time.Since(start); code != 200 || took > time.Second {
		t.Fatalf("status %d after %v, want 200 at once: the client waited for an attempt begun after the winner", code, took)
	}
	if n := late.Load(); n != 0 {
		t.Errorf("%d attempts were sent after the race was won", n)
	}
}

// A per-try timer of a failed attempt fires after the request's goroutine
// stopped waiting: it starts nothing, so no response is left unread and
// no backend keeps a request counted.
func TestNoHedgeStartsAfterTheRaceIsOver(t *testing.T) {
	var calls, closed atomic.Int32
	st := &scriptedTransport{answer: func(req *http.Request) (*http.Response, error) {
		switch {
		case strings.HasPrefix(req.URL.Host, "10.0.0.1"):
			time.Sleep(30 * time.Millisecond) // past its per-try time: hedged
			return nil, io.ErrShortBuffer     // an error never retried
		case strings.HasPrefix(req.URL.Host, "10.0.0.2"):
			time.Sleep(15 * time.Millisecond) // fails just before its own per-try time
			return nil, io.ErrShortBuffer
		}
		calls.Add(1)
		return okResponse(req, &closed), nil
	}}
	obs := observerFunc(func(b *balancer.Backend, _ bool) {
		if b.Zone() == "b" {
			time.Sleep(50 * time.Millisecond) // the hedge's timer fires meanwhile
		}
	})
	pc := scriptedPool(st, obs)
	px := startProxy(t, pc)
	resp, err := http.Get(px.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	c := pc.Balancer.Backend("10.0.0.3:80")
	testwait.Until(t, 2*time.Second, "every attempt on zone c to end", func() bool {
		return c.InFlight() == 0 && closed.Load() == calls.Load()
	})
	if calls.Load() > 0 && resp.StatusCode != 200 {
		t.Errorf("zone c answered 200 %d times, yet the client got %d", calls.Load(), resp.StatusCode)
	}
}

// A retryable status that may not be retried (attempts spent) does not
// cancel an attempt still running: the better answer wins when it comes.
func TestRetryableStatusWaitsForARunningHedge(t *testing.T) {
	var closed atomic.Int32
	st := &scriptedTransport{answer: func(req *http.Request) (*http.Response, error) {
		if strings.HasPrefix(req.URL.Host, "10.0.0.1") {
			time.Sleep(40 * time.Millisecond) // past its per-try time, then 503
			return &http.Response{StatusCode: 503, Status: "503 Service Unavailable", Header: http.Header{},
				Body: io.NopCloser(strings.NewReader("busy")), ContentLength: 4, ProtoMajor: 1, ProtoMinor: 1, Request: req}, nil
		}
		time.Sleep(60 * time.Millisecond) // the hedge answers after the 503
		return okResponse(req, &closed), nil
	}}
	pc := scriptedPool(st, nil)
	pc.Retry.Statuses = []int{503}
	pc.Retry.Attempts = 2
	px := startProxy(t, pc)
	if code, _, body := get(t, http.DefaultClient, "GET", px.URL+"/", nil, nil); code != 200 || body != "ok" {
		t.Fatalf("status %d %q, want the hedge's 200 over the first attempt's 503", code, body)
	}
}

// An attempt overtaken past its per-try time counts against its backend
// only when the hedge that won answered within the per-try time: when the
// hedge was as slow, the whole pool was (a load surge the proxy queues),
// and no backend is blamed, so none is ejected for it.
func TestOvertakenTimeoutBlamesOnlyAnOutlier(t *testing.T) {
	for _, tc := range []struct {
		name   string
		hedge  time.Duration // how long zones b and c take
		blameA bool
	}{
		{"the hedge answered within the per-try time", 2 * time.Millisecond, true},
		{"the hedge was as slow", 40 * time.Millisecond, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var closed atomic.Int32
			st := &scriptedTransport{answer: func(req *http.Request) (*http.Response, error) {
				d := tc.hedge
				if strings.HasPrefix(req.URL.Host, "10.0.0.1") {
					d = 150 * time.Millisecond // zone a: past the 20 ms per-try time
				}
				select {
				case <-time.After(d):
					return okResponse(req, &closed), nil
				case <-req.Context().Done():
					return nil, req.Context().Err()
				}
			}}
			var mu sync.Mutex
			blamed := map[string]int{}
			obs := observerFunc(func(b *balancer.Backend, failed bool) {
				if failed {
					mu.Lock()
					blamed[b.Zone()]++
					mu.Unlock()
				}
			})
			pc := scriptedPool(st, obs)
			px := startProxy(t, pc)
			for range 5 {
				if code, _, _ := get(t, http.DefaultClient, "GET", px.URL+"/", nil, nil); code != 200 {
					t.Fatalf("status %d, want 200", code)
				}
			}
			a := pc.Balancer.Backend("10.0.0.1:80")
			testwait.Until(t, 2*time.Second, "zone a's attempts to end", func() bool { return a.InFlight() == 0 })
			mu.Lock()
			defer mu.Unlock()
			if got := blamed["a"] > 0; got != tc.blameA {
				t.Errorf("zone a blamed %d times, want blamed: %v", blamed["a"], tc.blameA)
			}
			if blamed["b"]+blamed["c"] > 0 {
				t.Errorf("the hedges' zones blamed: %v", blamed)
			}
		})
	}
}
