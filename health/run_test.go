package health

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/balancer"
	"github.com/azimuthproxy/azimuth/internal/testwait"
)

// TestRunStopsEverything runs a checker and a detector against real
// backends, one of them hanging, then cancels them: Run returns and every
// goroutine they started ends.
func TestRunStopsEverything(t *testing.T) {
	good := newScripted(t, "127.0.1.1", ok())
	hung := newScripted(t, "127.0.1.2", hang())
	flaky := newScripted(t, "127.0.2.1", ok(), fail())
	f := newFixture(t, balancer.Options{ActiveChecks: true}, []balancer.Spec{
		{Address: good.Addr(), Zone: "a"}, {Address: hung.Addr(), Zone: "a"}, {Address: flaky.Addr(), Zone: "b"},
	})
	runtime.GC()
	before := runtime.NumGoroutine()

	o := activeOpts(1, 1)
	o.Interval, o.Timeout = 20*time.Millisecond, 2*time.Second // the hung check is in flight at cancel
	c, err := NewChecker(f.t, o)
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewDetector(f.t, passive(1, time.Minute, 100))
	if err != nil {
		t.Fatal(err)
	}
	stopC := runOwned(t, c.Run)
	stopD := runOwned(t, d.Run)
	d.Observe(f.backend(t, good.Addr()), true) // an ejection timer is pending
	testwait.Until(t, 5*time.Second, "checks of every backend", func() bool {
		return good.Hits() >= 3 && flaky.Hits() >= 3 && hung.Hits() >= 1
	})
	start := time.Now()
	stopC()
	stopD()
	if elapsed := time.Since(start); elapsed > time.Second {
		t.Errorf("stopping took %v; a hung check must be cancelled, not waited out", elapsed)
	}
	testwait.Until(t, 5*time.Second, "goroutines to end", func() bool {
		return runtime.NumGoroutine() <= before
	})
}

// TestActivePathBound shows the active path's detection bound with a real
// backend that starts hanging: it goes Down within its first check (at most
// Interval+10% away) + (Fall-1) × FastInterval (+10%) + Timeout, plus
// scheduling slack for a loaded CI machine; and comes back within Rise
// intervals.
func TestActivePathBound(t *testing.T) {
	const slack = 400 * time.Millisecond
	cases := []struct {
		name string
		o    ActiveOptions
	}{
		{"every interval", ActiveOptions{Interval: 100 * time.Millisecond, Timeout: 50 * time.Millisecond, Rise: 2, Fall: 2}},
		{"fast interval while in doubt", ActiveOptions{Interval: 200 * time.Millisecond, FastInterval: 50 * time.Millisecond,
			Timeout: 50 * time.Millisecond, Rise: 2, Fall: 3}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := newScripted(t, "127.0.3.1", ok())
			other := newScripted(t, "127.0.3.2", ok())
			f := newFixture(t, balancer.Options{ActiveChecks: true}, specs("c", srv.Addr(), other.Addr()))
			o := tc.o
			c, err := NewChecker(f.t, o)
			if err != nil {
				t.Fatal(err)
			}
			fast := o.FastInterval
			if fast == 0 {
				fast = o.Interval
			}
			runOwned(t, c.Run)
			testwait.Until(t, 5*time.Second, "a first passing check", func() bool {
				i, _ := f.t.Info(srv.Addr())
				return i.CheckSuccesses >= 1
			})
			b := f.backend(t, srv.Addr())
			srv.set(hang())
			hungAt := time.Now()
			testwait.Until(t, 5*time.Second, "the hung backend to go down", func() bool { return b.State() == balancer.StateDown })
			took := time.Since(hungAt)
			bound := (o.Interval+time.Duration(o.Fall-1)*fast)*11/10 + o.Timeout
			t.Logf("hang to down: %v (bound %v + %v slack)", took, bound, slack)
			if took > bound+slack {
				t.Errorf("hang to down took %v, want at most %v", took, bound+slack)
			}
			if i, _ := f.t.Info(srv.Addr()); i.CheckFailures != o.Fall {
				t.Errorf("down after %d failed checks, want fall %d", i.CheckFailures, o.Fall)
			}

			srv.set(ok())
			okAt := time.Now()
			testwait.Until(t, 5*time.Second, "the backend to come back", func() bool { return b.State() == balancer.StateUp })
			took = time.Since(okAt)
			bound = (o.Interval + time.Duration(o.Rise-1)*fast) * 11 / 10
			t.Logf("recovery to up: %v (bound %v + %v slack)", took, bound, slack)
			if took > bound+slack {
				t.Errorf("recovery took %v, want at most %v", took, bound+slack)
			}
		})
	}
}

// BenchmarkObserve measures the request path's cost of passive detection:
// a success on a backend of a 64-backend pool, from parallel goroutines.
func BenchmarkObserve(b *testing.B) {
	pool := balancer.NewPool("web", balancer.Options{})
	pool.Update(specs("a", addrs(1, 64)...))
	d, err := NewDetector(NewTracker(pool, nil, nil), passive(5, time.Second, 50))
	if err != nil {
		b.Fatal(err)
	}
	bs := pool.Backends()
	b.Run("success", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				d.Observe(bs[i&63], false)
				i++
			}
		})
	})
	b.Run("failure", func(b *testing.B) {
		// A threshold never reached: the cost of counting, not of ejecting.
		if err := d.Configure(passive(1<<40, time.Second, 50)); err != nil {
			b.Fatal(err)
		}
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				d.Observe(bs[i&63], true)
				i++
			}
		})
	})
}

// TestCheckerBoundsConcurrency checks forty hanging backends with at most
// four checks in flight: the checker's goroutines do not grow with the pool.
func TestCheckerBoundsConcurrency(t *testing.T) {
	const backends, limit = 40, 4
	var mu sync.Mutex
	cur, peak, total := 0, 0, 0
	quit := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		cur++
		total++
		peak = max(peak, cur)
		mu.Unlock()
		select {
		case <-r.Context().Done():
		case <-quit:
		}
		mu.Lock()
		cur--
		mu.Unlock()
	})
	var sp []balancer.Spec
	for i := range backends {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.4.%d:0", i+1))
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewUnstartedServer(h)
		srv.Listener.Close()
		srv.Listener = ln
		srv.Start()
		t.Cleanup(srv.Close)
		sp = append(sp, balancer.Spec{Address: ln.Addr().String(), Zone: "d"})
	}
	t.Cleanup(func() { close(quit) })
	f := newFixture(t, balancer.Options{ActiveChecks: true}, sp)
	// Checks hang until their timeout, far beyond the interval: every
	// round wants all forty in flight, and the limit holds them to four.
	o := ActiveOptions{Interval: 20 * time.Millisecond, Timeout: 5 * time.Second, Rise: 1, Fall: 1, MaxConcurrent: limit}
	c, err := NewChecker(f.t, o)
	if err != nil {
		t.Fatal(err)
	}
	base := runtime.NumGoroutine()
	runOwned(t, c.Run)
	count := func() (int, int) { mu.Lock(); defer mu.Unlock(); return cur, total }
	testwait.Until(t, 5*time.Second, "the first checks", func() bool { _, n := count(); return n >= limit })
	// Watch for 15 intervals: no fifth check may start.
	for end := time.Now().Add(15 * o.Interval); time.Now().Before(end); time.Sleep(o.Interval / 4) {
		if cur, n := count(); cur > limit || n > limit {
			t.Fatalf("%d checks in flight, %d started; the limit is %d", cur, n, limit)
		}
	}
	if g := runtime.NumGoroutine() - base; g > 4*limit+8 {
		t.Errorf("%d more goroutines while checking %d backends, want a bound set by the limit %d", g, backends, limit)
	}
}
