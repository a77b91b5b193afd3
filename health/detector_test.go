package health

import (
	"context"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/azimuthproxy/azimuth/balancer"
)

// addrs returns n backend addresses of a zone's loopback range; nothing
// listens there, the detector never dials.
func addrs(zone int, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("127.0.%d.%d:8080", zone, i+1)
	}
	return out
}

func passive(cf int, ejection time.Duration, pct int) PassiveOptions {
	return PassiveOptions{ConsecutiveFailures: cf, Ejection: ejection, MaxEjectedPercent: pct}
}

// failN reports n failed attempts on b.
func failN(d *Detector, b *balancer.Backend, n int) {
	for range n {
		d.Observe(b, true)
	}
}

// tryOnce sends b its trial request, which passes or fails, as the proxy
// does: PickTrial, the outcome, then the lease's release.
func tryOnce(t *testing.T, f *fixture, d *Detector, b *balancer.Backend, failed bool) {
	t.Helper()
	lease, ok := f.pool.PickTrial(nil)
	if !ok || lease.Backend() != b {
		t.Fatalf("no trial request for %s (state %v, trial open %v)", b.Address(), b.State(), b.Trial())
	}
	d.Observe(b, failed)
	lease.Release()
}

func TestDetectorBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, balancer.Options{SlowStart: time.Second}, specs("a", addrs(1, 4)...))
		const ejection = 10 * time.Second
		d, err := NewDetector(f.t, passive(3, ejection, 50))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go d.Run(ctx)
		b := f.pool.Backends()[0]
		want := []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 10, 10}
		for i, k := range want {
			failN(d, b, 2)
			if b.State() != balancer.StateUp {
				t.Fatalf("round %d: ejected after 2 of 3 failures", i+1)
			}
			failN(d, b, 1)
			if b.State() != balancer.StateEjected {
				t.Fatalf("round %d: state %v after 3 failures, want ejected", i+1, b.State())
			}
			info, _ := f.t.Info(b.Address())
			length := time.Duration(k) * ejection
			if got := time.Until(info.EjectedUntil); got != length {
				t.Fatalf("round %d: ejected for %v, want %v (%d×)", i+1, got, length, k)
			}
			time.Sleep(length - time.Nanosecond)
			synctest.Wait()
			if b.State() != balancer.StateEjected {
				t.Fatalf("round %d: back %v before the ejection ended", i+1, b.State())
			}
			time.Sleep(time.Nanosecond)
			synctest.Wait()
			if info, _ := f.t.Info(b.Address()); b.State() != balancer.StateEjected || info.Trial != "waiting" {
				t.Fatalf("round %d: state %v, trial %q when the ejection ended, want ejected waiting for a trial", i+1, b.State(), info.Trial)
			}
			tryOnce(t, f, d, b, false)
			if b.State() != balancer.StateUp || b.Trial() {
				t.Fatalf("round %d: state %v after its trial request passed, want up", i+1, b.State())
			}
		}
		labels := map[string]string{"pool": "web", "backend": b.Address(), "zone": "a"}
		if got, _ := f.counter(t, "azimuth_backend_ejections_total", labels); got != float64(len(want)) {
			t.Errorf("ejections counted %v, want %d", got, len(want))
		}
		labels["to"] = "ejected"
		if got, _ := f.counter(t, "azimuth_backend_health_transitions_total", labels); got != float64(len(want)) {
			t.Errorf("transitions to ejected counted %v, want %d", got, len(want))
		}
		if got := f.logs.count(`"backend health changed"`, `"to":"ejected"`, `"reason":"3 consecutive failed attempts`); got != len(want) {
			t.Errorf("logged %d ejections with their reason, want %d", got, len(want))
		}
		if got := f.logs.count(`"backend health changed"`, `"from":"ejected"`, `"to":"up"`); got != len(want) {
			t.Errorf("logged %d returns, want %d", got, len(want))
		}
	})
}

func TestDetectorBackoffDecays(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, balancer.Options{}, specs("a", addrs(1, 2)...))
		const ejection = 10 * time.Second
		d, err := NewDetector(f.t, passive(1, ejection, 50))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go d.Run(ctx)
		b := f.pool.Backends()[0]
		for k := 1; k <= 3; k++ { // ejections of 10s, 20s, 30s, each after a return
			d.Observe(b, true)
			time.Sleep(time.Duration(k) * ejection)
			synctest.Wait()
			tryOnce(t, f, d, b, false)
		}
		if b.State() != balancer.StateUp {
			t.Fatalf("state %v, want up", b.State())
		}
		// Two ejection lengths of good behaviour forgive two ejections.
		time.Sleep(2*ejection + ejection/2)
		info, _ := f.t.Info(b.Address())
		if info.RecentEjections != 1 || info.Ejections != 3 {
			t.Fatalf("recent ejections %d (total %d), want 1 (3)", info.RecentEjections, info.Ejections)
		}
		d.Observe(b, true)
		info, _ = f.t.Info(b.Address())
		if got := time.Until(info.EjectedUntil); got != 2*ejection {
			t.Errorf("ejected for %v after decay, want %v", got, 2*ejection)
		}
	})
}

func TestDetectorMaxEjectedPercent(t *testing.T) {
	cases := []struct {
		name        string
		backends    int
		pct         int
		wantEjected int
	}{
		{"half of four", 4, 50, 2},
		{"one at least, even at 10%", 3, 10, 1},
		{"one at least, even at 0%", 3, 0, 1},
		{"a third of ten is three", 10, 33, 3},
		{"all at 100%", 5, 100, 5},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, balancer.Options{}, specs("a", addrs(1, tc.backends)...))
			d, err := NewDetector(f.t, passive(2, time.Minute, tc.pct))
			if err != nil {
				t.Fatal(err)
			}
			for _, b := range f.pool.Backends() {
				failN(d, b, 2)
			}
			ejected := 0
			for _, b := range f.pool.Backends() {
				if b.State() == balancer.StateEjected {
					ejected++
				}
			}
			if ejected != tc.wantEjected {
				t.Errorf("%d of %d ejected, want %d", ejected, tc.backends, tc.wantEjected)
			}
			if st := f.pool.Status(); st.Healthy != tc.backends-tc.wantEjected {
				t.Errorf("pool status healthy %d, want %d", st.Healthy, tc.backends-tc.wantEjected)
			}
		})
	}
}

func TestDetectorObserve(t *testing.T) {
	cases := []struct {
		name     string
		cf       int
		start    balancer.State
		outcomes []bool // true = failed
		want     balancer.State
	}{
		{"threshold reached", 3, balancer.StateUp, []bool{true, true, true}, balancer.StateEjected},
		{"a success starts the count over", 3, balancer.StateUp, []bool{true, true, false, true, true}, balancer.StateUp},
		{"disabled with 0", 0, balancer.StateUp, []bool{true, true, true, true}, balancer.StateUp},
		{"a down backend is not ejected", 1, balancer.StateDown, []bool{true, true}, balancer.StateDown},
		{"a pending backend is not ejected", 1, balancer.StatePending, []bool{true}, balancer.StatePending},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, balancer.Options{}, specs("a", addrs(1, 2)...))
			d, err := NewDetector(f.t, passive(tc.cf, time.Minute, 50))
			if err != nil {
				t.Fatal(err)
			}
			b := f.pool.Backends()[0]
			b.SetState(tc.start)
			for _, failed := range tc.outcomes {
				d.Observe(b, failed)
			}
			if b.State() != tc.want {
				t.Errorf("state %v, want %v", b.State(), tc.want)
			}
		})
	}
}

// TestDetectorPenalizes: every failure in a row sets the backend's soft
// penalty (2, 4, 8 connections), shown in its Info; a success ends it. It
// works with ejection off too.
func TestDetectorPenalizes(t *testing.T) {
	for _, cf := range []int{5, 0} {
		f := newFixture(t, balancer.Options{PenaltyHalfLife: time.Minute}, specs("a", addrs(1, 2)...))
		d, err := NewDetector(f.t, passive(cf, time.Minute, 50))
		if err != nil {
			t.Fatal(err)
		}
		b := f.pool.Backends()[0]
		for _, want := range []int64{2, 4, 8} {
			d.Observe(b, true)
			if info, _ := f.t.Info(b.Address()); info.Penalty != want {
				t.Errorf("consecutive_failures %d: penalty %d, want %d", cf, info.Penalty, want)
			}
		}
		d.Observe(b, false)
		if got := b.Penalty(); got != 0 {
			t.Errorf("consecutive_failures %d: penalty %d after a success", cf, got)
		}
	}
}

func TestDetectorIgnoresRemovedBackends(t *testing.T) {
	f := newFixture(t, balancer.Options{}, specs("a", addrs(1, 2)...))
	d, err := NewDetector(f.t, passive(1, time.Minute, 100))
	if err != nil {
		t.Fatal(err)
	}
	gone := f.pool.Backends()[0]
	f.pool.Update(specs("a", addrs(1, 2)[1:]...))
	d.Observe(gone, true)
	if gone.State() != balancer.StateUp {
		t.Errorf("a removed backend went %v", gone.State())
	}
}

func TestActiveAndPassiveInteract(t *testing.T) {
	t.Run("an active pass lifts an ejection", func(t *testing.T) {
		srv := newScripted(t, "", ok())
		f := newFixture(t, balancer.Options{}, specs("a", srv.Addr(), "127.0.1.9:1"))
		d, _ := NewDetector(f.t, passive(2, time.Hour, 50))
		c, err := NewChecker(f.t, activeOpts(2, 2))
		if err != nil {
			t.Fatal(err)
		}
		b := f.backend(t, srv.Addr())
		failN(d, b, 2)
		if b.State() != balancer.StateEjected {
			t.Fatalf("state %v, want ejected", b.State())
		}
		c.checkNow(context.Background(), b)
		if b.State() != balancer.StateUp {
			t.Fatalf("state %v after a passing check, want up", b.State())
		}
		if info, _ := f.t.Info(b.Address()); !info.EjectedUntil.IsZero() {
			t.Errorf("ejected until %v after being lifted", info.EjectedUntil)
		}
		if next := d.sweep(time.Now().Add(2 * time.Hour)); !next.IsZero() {
			t.Errorf("the lifted ejection still has a deadline %v", next)
		}
	})
	t.Run("active down beats an ejection", func(t *testing.T) {
		srv := newScripted(t, "", fail())
		f := newFixture(t, balancer.Options{}, specs("a", srv.Addr(), "127.0.1.9:1"))
		d, _ := NewDetector(f.t, passive(1, time.Minute, 50))
		c, err := NewChecker(f.t, activeOpts(2, 2))
		if err != nil {
			t.Fatal(err)
		}
		b := f.backend(t, srv.Addr())
		d.Observe(b, true)
		c.checkNow(context.Background(), b)
		c.checkNow(context.Background(), b)
		if b.State() != balancer.StateDown {
			t.Fatalf("state %v after fall failures, want down", b.State())
		}
		d.sweep(time.Now().Add(time.Hour))
		if b.State() != balancer.StateDown {
			t.Errorf("the end of an ejection brought a down backend %v", b.State())
		}
	})
}

func TestPassiveOptionsValidate(t *testing.T) {
	cases := []struct {
		name   string
		o      PassiveOptions
		wantOK bool
	}{
		{"valid", passive(5, time.Second, 50), true},
		{"off", passive(0, 0, 0), true},
		{"negative failures", passive(-1, time.Second, 50), false},
		{"no ejection length", passive(5, 0, 50), false},
		{"percent above 100", passive(5, time.Second, 101), false},
		{"negative percent", passive(5, time.Second, -1), false},
	}
	f := newFixture(t, balancer.Options{}, nil)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewDetector(f.t, tc.o)
			if (err == nil) != tc.wantOK {
				t.Errorf("NewDetector error = %v, want ok=%v", err, tc.wantOK)
			}
		})
	}
}

func TestDetectorEjectedBackendReturnsAfterLeaving(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, balancer.Options{}, specs("a", addrs(1, 2)...))
		d, err := NewDetector(f.t, passive(1, time.Minute, 50))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go d.Run(ctx)
		var lease balancer.Lease
		var b *balancer.Backend
		for b == nil || b.Address() != addrs(1, 1)[0] { // hold a request on the first backend
			if b != nil {
				lease.Release()
			}
			if lease, err = f.pool.Pick(context.Background(), nil); err != nil {
				t.Fatal(err)
			}
			b = lease.Backend()
		}
		d.Observe(b, true)
		if b.State() != balancer.StateEjected {
			t.Fatalf("state %v, want ejected", b.State())
		}
		f.pool.Update(specs("a", addrs(1, 2)[1:]...)) // it leaves while serving...
		synctest.Wait()
		time.Sleep(2 * time.Second) // ...the detector forgets it...
		synctest.Wait()
		f.pool.Update(specs("a", addrs(1, 2)...)) // ...and it comes back
		lease.Release()
		if f.pool.Backend(b.Address()) != b {
			t.Fatal("the balancer did not keep the retiring backend")
		}
		time.Sleep(time.Minute + 2*sweepEvery) // the detector sees it within a sweep
		synctest.Wait()
		if !b.Trial() {
			t.Fatalf("state %v and no trial a base ejection after it came back, want a trial", b.State())
		}
		tryOnce(t, f, d, b, false)
		if b.State() != balancer.StateUp {
			t.Errorf("state %v after its trial request passed, want up", b.State())
		}
	})
}

// TestDetectorTrial plays what follows an ejection: the backend waits for
// one trial request; a failed trial keeps it out for another ejection of
// the same length at once, without waiting for consecutive failures; a
// trial that ends without a verdict opens again; a passed one brings it
// up; and a backend no request came to try within another ejection length
// comes back as before.
func TestDetectorTrial(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, balancer.Options{}, specs("a", addrs(1, 4)...))
		const ejection = 5 * time.Second
		d, err := NewDetector(f.t, passive(5, ejection, 50))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go d.Run(ctx)
		b := f.pool.Backends()[0]
		failN(d, b, 5)
		time.Sleep(ejection)
		synctest.Wait()
		if !b.Trial() || b.State() != balancer.StateEjected {
			t.Fatalf("state %v, trial %v after the ejection, want ejected waiting for a trial", b.State(), b.Trial())
		}

		tryOnce(t, f, d, b, true)
		info, _ := f.t.Info(b.Address())
		if b.State() != balancer.StateEjected || b.Trial() || time.Until(info.EjectedUntil) != ejection {
			t.Fatalf("after a failed trial: state %v, trial %v, ejected for %v; want ejected for %v more, no trial", b.State(), b.Trial(), time.Until(info.EjectedUntil), ejection)
		}
		if got := f.logs.count(`"backend still failing"`, `"reason":"trial request failed; ejected for 5s more"`); got != 1 {
			t.Errorf("logged %d failed trials, want 1", got)
		}

		time.Sleep(ejection)
		synctest.Wait()
		lease, ok := f.pool.PickTrial(nil)
		if !ok {
			t.Fatal("no trial after the second ejection")
		}
		lease.Release() // the client left: no verdict
		if !b.Trial() || b.TrialRunning() {
			t.Fatal("the trial did not open again after a request without a verdict")
		}
		tryOnce(t, f, d, b, false)
		if b.State() != balancer.StateUp {
			t.Fatalf("state %v after a passed trial, want up", b.State())
		}
		labels := map[string]string{"pool": "web", "backend": b.Address(), "zone": "a"}
		if got, _ := f.counter(t, "azimuth_backend_ejections_total", labels); got != 1 {
			t.Errorf("ejections counted %v, want 1: a failed trial goes on with the same ejection", got)
		}

		// Nobody comes to try it: it returns one ejection length later.
		failN(d, b, 5)
		time.Sleep(2 * ejection) // its second recent ejection
		synctest.Wait()
		if !b.Trial() {
			t.Fatalf("state %v, no trial after the third ejection", b.State())
		}
		time.Sleep(ejection - time.Nanosecond)
		synctest.Wait()
		if b.State() != balancer.StateEjected {
			t.Fatalf("state %v before a trial-less ejection length passed", b.State())
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		if b.State() != balancer.StateUp || b.Trial() {
			t.Fatalf("state %v, trial %v an ejection length without a trial request, want up", b.State(), b.Trial())
		}
	})
}
