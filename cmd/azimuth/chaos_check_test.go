package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/loadtest/fleet"
)

// chaosExpect is what a case allows beyond the promises every case keeps.
type chaosExpect struct {
	// abortFrom names the backends whose 2xx bodies may break off: a reset
	// in the middle of a body cannot be retried once the client has the
	// headers, and the client must then see the body fail.
	abortFrom map[string]bool
	// everyRequest says the fault never makes a backend fail a request, so
	// POSTs without a key must succeed too.
	everyRequest bool
	// settled is when the fault was over and every backend up again:
	// every request started after it must succeed, whatever its kind.
	settled time.Time
}

// chaosTally counts a loop's outcomes, for the checks and the report.
type chaosTally struct {
	sent, ok, failed, aborted [chaosKinds]int
	// byZone counts successful answers by the zone that gave them.
	byZone map[string]int
	// most is the most deliveries of one request of each kind.
	most [chaosKinds]int64
}

func (c chaosTally) String() string {
	var b strings.Builder
	for k := range chaosKinds {
		fmt.Fprintf(&b, "%s: %d sent, %d ok, %d failed, %d aborted, delivered at most %dx; ", k, c.sent[k], c.ok[k], c.failed[k], c.aborted[k], c.most[k])
	}
	fmt.Fprintf(&b, "answers by zone %v", c.byZone)
	return b.String()
}

// chaosCheck stops the loop and checks its outcomes against the backends'
// counts: (1) no idempotent request failed, (2) no POST without a key was
// delivered twice, and a success was delivered, and no 2xx body was ever
// cut short without the client knowing. It returns the tally.
func chaosCheck(t *testing.T, l *chaosLoad, f *fleet.Fleet, e chaosExpect) chaosTally {
	t.Helper()
	l.stop()
	c := chaosTally{byZone: map[string]int{}}
	delivered := f.Keys()
	var bad []string
	fail := func(o chaosOutcome, why string) {
		bad = append(bad, why+": "+o.String())
	}
	for _, o := range l.results() {
		k := o.kind
		c.sent[k]++
		n := delivered[o.id]
		c.most[k] = max(c.most[k], n)
		switch o.class() {
		case "ok":
			c.ok[k]++
			if b := f.Backend(o.backend); b != nil {
				c.byZone[b.Zone]++
			}
			if n < 1 {
				fail(o, "answered but never delivered")
			}
		case "short":
			fail(o, "a cut body passed off as whole")
		case "aborted":
			c.aborted[k]++
			if c.aborted[k] == 1 {
				t.Logf("first aborted %s", o)
			}
			if !e.abortFrom[o.backend] {
				fail(o, "body broke off")
			}
		default:
			c.failed[k]++
			if c.failed[k] == 1 {
				t.Logf("first failed %s", o)
			}
			switch {
			case k.idempotent():
				fail(o, "idempotent request failed")
			case e.everyRequest:
				fail(o, "request failed though no backend did")
			}
		}
		if o.class() != "ok" && !e.settled.IsZero() && o.started.After(e.settled) {
			fail(o, "failed after the fault was over")
		}
		if k == chaosPOST && n > 1 {
			fail(o, fmt.Sprintf("non-idempotent request delivered %d times", n))
		}
		if n > chaosAttempts {
			fail(o, fmt.Sprintf("delivered %d times, more than retry.attempts", n))
		}
	}
	t.Logf("client loop: %v", c)
	if len(bad) > 0 {
		t.Errorf("%d bad outcomes; first ones:\n%s", len(bad), strings.Join(bad[:min(len(bad), 8)], "\n"))
	}
	for k := range chaosKinds {
		if c.ok[k] < 20 {
			t.Errorf("only %d %s requests succeeded: too little load to show anything", c.ok[k], k)
		}
	}
	return c
}

// chaosUsage is a process's goroutines and open file descriptors as its
// admin /metrics reports them.
type chaosUsage struct{ goroutines, fds float64 }

func chaosUsageNow(t *testing.T, admin string) chaosUsage {
	t.Helper()
	return chaosUsage{reloadMetric(t, admin, "go_goroutines"), reloadMetric(t, admin, "process_open_fds")}
}

// chaosBaseline is the quietest of ten scrapes over 300ms: each health
// check in flight at a scrape adds goroutines and a socket for a moment,
// and six backends are checked ten times a second.
func chaosBaseline(t *testing.T, admin string) chaosUsage {
	t.Helper()
	base := chaosUsageNow(t, admin)
	for range 9 {
		time.Sleep(30 * time.Millisecond) // spacing of the samples
		u := chaosUsageNow(t, admin)
		base.goroutines, base.fds = min(base.goroutines, u.goroutines), min(base.fds, u.fds)
	}
	return base
}

// chaosLeakSlack is what may stay above the baseline, taken before any
// load, once the fault is over, the load has stopped and the clients have
// closed their connections. The pool keeps at most one idle keep-alive
// connection per backend (max_idle_conns_per_backend: 1) for 90s, one
// descriptor each: 6 with six backends (the HTTP/1.1 transport keeps no
// goroutine per connection). The 12 goroutines cover those that come and
// go once a fault is over: a generation retiring after a reload, timer
// functions, health checks in flight; runs of the suite saw up to 9 above
// the baseline. A leak of one goroutine per request, per retry or per
// reload goes far past this.
var chaosLeakSlack = chaosUsage{goroutines: 12, fds: 6}

// chaosCheckLeaks polls until goroutines and descriptors are back within
// chaosLeakSlack of base, and returns the last reading.
func chaosCheckLeaks(t *testing.T, admin string, base chaosUsage) chaosUsage {
	t.Helper()
	var now chaosUsage
	deadline := time.Now().Add(10 * time.Second)
	for {
		now = chaosUsageNow(t, admin)
		if now.goroutines <= base.goroutines+chaosLeakSlack.goroutines && now.fds <= base.fds+chaosLeakSlack.fds {
			t.Logf("azimuth after the fault: %v goroutines, %v fds; baseline %v, %v", now.goroutines, now.fds, base.goroutines, base.fds)
			return now
		}
		if time.Now().After(deadline) {
			t.Errorf("azimuth holds %v goroutines and %v fds 10s after the fault; baseline %v and %v, slack %v and %v",
				now.goroutines, now.fds, base.goroutines, base.fds, chaosLeakSlack.goroutines, chaosLeakSlack.fds)
			return now
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
}
