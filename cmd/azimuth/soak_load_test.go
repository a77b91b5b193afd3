package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The soak's client loop. It sends the chaos suite's three kinds of
// request (chaosDo: GET, POST with an Idempotency-Key, POST without one,
// each with its own id that the fleet counts) to both of the soak's pools,
// and tallies outcomes as they come instead of keeping them: a 30-minute
// run sends about 700,000 requests. Only failures are kept, and they are
// few.

// soakPools are the soak's pools; soakPath is the path prefix that routes
// to each.
var (
	soakPools = [2]string{"web", "svc"}
	soakPath  = [2]string{"", "/svc"}
)

// soakKindOf is the kind of a worker's n-th request: every tenth a POST
// without a key, every tenth (offset by five) a POST with one, the rest
// GETs, as in the soak before it had faults (every tenth a POST).
func soakKindOf(n int64) chaosKind {
	switch n % 10 {
	case 0:
		return chaosPOST
	case 5:
		return chaosKeyed
	}
	return chaosGET
}

// soakPoolOf is the pool of a worker's n-th request: every third goes to
// the Consul pool. Three and ten are coprime, so every kind reaches both.
func soakPoolOf(n int64) int {
	if n%3 == 0 {
		return 1
	}
	return 0
}

// soakFailure is a request that did not get a whole 2xx, with when it
// ended, so it can be set against the faults' windows.
type soakFailure struct {
	o    chaosOutcome
	pool int
	end  time.Time
}

func (f soakFailure) String() string {
	return fmt.Sprintf("%s pool %s, ended %s", f.o, soakPools[f.pool], f.end.Format("15:04:05.000"))
}

// soakLoad is the running loop.
type soakLoad struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	ok     atomic.Int64

	mu       sync.Mutex
	sent     [2][chaosKinds]int64
	answered [2][chaosKinds]int64
	failures []soakFailure
	// dropped counts failures beyond soakKeepFailures, which are counted
	// but not kept.
	dropped int64
}

// soakKeepFailures bounds the failures kept: past it a broken proxy
// would fill the test's memory, and the first ones tell the story.
const soakKeepFailures = 10_000

// soakStartLoad runs soakWorkers paced workers against base (the
// listener's URL) until ctx ends or their request budget is spent.
func soakStartLoad(ctx context.Context, t *testing.T, base string, budget int64) *soakLoad {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	l := &soakLoad{cancel: cancel}
	tp := &http.Transport{MaxIdleConnsPerHost: soakWorkers, MaxConnsPerHost: soakWorkers}
	t.Cleanup(tp.CloseIdleConnections)
	client := &http.Client{Transport: tp, Timeout: 10 * time.Second}
	per := budget / soakWorkers
	for range soakWorkers {
		l.wg.Go(func() {
			tick := time.NewTicker(soakPace)
			defer tick.Stop()
			for n := int64(0); n < per; n++ {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				pool := soakPoolOf(n)
				// chaosDo takes no context: a stop lets the request in
				// flight finish, so it is never counted as a failure.
				o := chaosDo(client, base+soakPath[pool], soakKindOf(n), chaosSeq.Add(1))
				l.record(pool, o, time.Now())
			}
		})
	}
	t.Cleanup(l.stop)
	return l
}

func (l *soakLoad) record(pool int, o chaosOutcome, end time.Time) {
	ok := o.class() == "ok"
	if ok {
		l.ok.Add(1)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sent[pool][o.kind]++
	if ok {
		l.answered[pool][o.kind]++
		return
	}
	if len(l.failures) < soakKeepFailures {
		l.failures = append(l.failures, soakFailure{o: o, pool: pool, end: end})
	} else {
		l.dropped++
	}
}

// stop ends the loop and waits for the requests in flight.
func (l *soakLoad) stop() {
	l.cancel()
	l.wg.Wait()
}

// soakWindow is a span during which a fault made a backend of pool fail
// requests: from when it was put in force until the backend was up again.
type soakWindow struct {
	pool     int
	from, to time.Time
}

// excuses reports whether the failure of a POST without a key is the
// fault's doing: the request was under way at some moment of the window,
// in the window's pool. Such a request may have reached the faulty
// backend, and the proxy must not send it again.
func (w soakWindow) excuses(f soakFailure) bool {
	return f.pool == w.pool && f.o.kind == chaosPOST && !f.o.started.After(w.to) && !f.end.Before(w.from)
}

// soakTally is the loop's outcome, for the checks and the report.
type soakTally struct {
	sent, ok     [2][chaosKinds]int64
	excused, bad int64
	// twice counts POSTs without a key that reached the backends more
	// than once; most is the most deliveries of any one request.
	twice, most int64
}

func (c soakTally) total() (sent, ok int64) {
	for p := range c.sent {
		for k := range chaosKinds {
			sent += c.sent[p][k]
			ok += c.ok[p][k]
		}
	}
	return sent, ok
}

func (c soakTally) String() string {
	var b strings.Builder
	for p, name := range soakPools {
		fmt.Fprintf(&b, "pool %s:", name)
		for k := range chaosKinds {
			fmt.Fprintf(&b, " %s %d sent, %d ok;", k, c.sent[p][k], c.ok[p][k])
		}
		b.WriteString(" ")
	}
	fmt.Fprintf(&b, "POSTs without a key failed during a fault: %d; other failures: %d; POSTs without a key delivered twice: %d; most deliveries of one request: %d",
		c.excused, c.bad, c.twice, c.most)
	return b.String()
}

// check stops the loop and checks its outcomes against the fleets' counts
// of deliveries (id to arrivals), which must be read after the loop
// stopped: no idempotent request failed; a POST
// without a key failed only while a fault was in force in its pool; no
// POST without a key was delivered twice, and every one answered was
// delivered; no request was delivered more than retry.attempts times.
func (l *soakLoad) check(t *testing.T, minOK int64, windows []soakWindow, delivered map[string]int64) soakTally {
	t.Helper()
	l.stop()
	l.mu.Lock()
	defer l.mu.Unlock()
	c := soakTally{sent: l.sent, ok: l.answered}
	var bad []string
	for _, f := range l.failures {
		excused := false
		for _, w := range windows {
			excused = excused || w.excuses(f)
		}
		if excused {
			c.excused++
			if c.excused <= 8 {
				t.Logf("failed during a fault, as it may: %v", f)
			}
			continue
		}
		c.bad++
		if len(bad) < 8 {
			bad = append(bad, f.String())
		}
	}
	c.bad += l.dropped
	postPrefix := fmt.Sprintf("chaos-%d-", chaosPOST)
	var postsDelivered int64
	var over []string
	for id, n := range delivered {
		c.most = max(c.most, n)
		if n > chaosAttempts && len(over) < 8 {
			over = append(over, fmt.Sprintf("%s %d times", id, n))
		}
		if !strings.HasPrefix(id, postPrefix) {
			continue
		}
		postsDelivered++
		if n > 1 {
			c.twice++
			if c.twice <= 8 {
				t.Errorf("POST without a key %s delivered %d times", id, n)
			}
		}
	}
	t.Logf("client loop: %v", c)
	if c.bad > 0 {
		t.Errorf("%d requests failed that no fault excuses; first ones:\n%s", c.bad, strings.Join(bad, "\n"))
	}
	if c.twice > 0 {
		t.Errorf("%d POSTs without a key were delivered more than once", c.twice)
	}
	if c.most > chaosAttempts {
		t.Errorf("requests were delivered more than retry.attempts (%d) times: %s", chaosAttempts, strings.Join(over, ", "))
	}
	if answered := c.ok[0][chaosPOST] + c.ok[1][chaosPOST]; postsDelivered < answered {
		t.Errorf("%d POSTs without a key were answered but only %d reached a backend", answered, postsDelivered)
	}
	if _, ok := c.total(); ok < minOK {
		t.Errorf("only %d requests succeeded, want at least %d", ok, minOK)
	}
	return c
}
