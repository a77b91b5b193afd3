package balancer

import (
	"context"
	"sync/atomic"
	"testing"
)

// ejectedPool returns a pool of two zones of two backends with the first
// backend ejected.
func ejectedPool(t *testing.T) (*Pool, *Backend) {
	t.Helper()
	p := testPool(Options{LocalZone: "a"})
	p.Update([]Spec{spec(1, 1, 1), spec(1, 2, 1), spec(2, 1, 1), spec(2, 2, 1)})
	b := p.Backend(addr(1, 1))
	if _, changed := b.SetState(StateEjected); !changed {
		t.Fatal("could not eject")
	}
	return p, b
}

func TestPickTrial(t *testing.T) {
	cases := []struct {
		name  string
		setup func(p *Pool, b *Backend, tried *Tried)
		want  bool
	}{
		{"open trial", func(p *Pool, b *Backend, _ *Tried) { b.OpenTrial() }, true},
		{"no trial opened", func(p *Pool, b *Backend, _ *Tried) {}, false},
		{"already tried by the request", func(p *Pool, b *Backend, tr *Tried) { b.OpenTrial(); tr.Add(b) }, false},
		{"drained after it opened", func(p *Pool, b *Backend, _ *Tried) { b.OpenTrial(); b.SetDrained(true) }, false},
		{"zone drained after it opened", func(p *Pool, b *Backend, _ *Tried) { b.OpenTrial(); p.SetZoneDrained("a", true) }, false},
		{"brought up by a check", func(p *Pool, b *Backend, _ *Tried) { b.OpenTrial(); b.SetState(StateUp) }, false},
		{"ended by health", func(p *Pool, b *Backend, _ *Tried) { b.OpenTrial(); b.EndTrial() }, false},
		{"removed from the set", func(p *Pool, b *Backend, _ *Tried) {
			b.OpenTrial()
			p.Update([]Spec{spec(1, 2, 1), spec(2, 1, 1), spec(2, 2, 1)})
		}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, b := ejectedPool(t)
			var tried Tried
			c.setup(p, b, &tried)
			l, ok := p.PickTrial(&tried)
			if ok != c.want {
				t.Fatalf("PickTrial gave a trial: %v, want %v", ok, c.want)
			}
			if !ok {
				if tried.Len() > 0 {
					return // open still, for another request
				}
				if n := p.trials.Load(); n != 0 {
					t.Errorf("%d trials still counted open; PickTrial would scan on every request", n)
				}
				return
			}
			if l.Backend() != b || !l.Trial() || !b.TrialRunning() || b.InFlight() != 1 {
				t.Fatalf("lease on %v (trial %v), running %v, in flight %d", l.Backend(), l.Trial(), b.TrialRunning(), b.InFlight())
			}
			if _, again := p.PickTrial(nil); again {
				t.Error("a second trial request while the first runs")
			}
			l.Release()
			if b.InFlight() != 0 || b.TrialRunning() || !b.Trial() {
				t.Errorf("after release without a verdict: in flight %d, running %v, open %v; want 0, false, true", b.InFlight(), b.TrialRunning(), b.Trial())
			}
			if l2, again := p.PickTrial(nil); !again || l2.Backend() != b {
				t.Error("the trial did not open again after a release without a verdict")
			} else {
				b.EndTrial() // health's verdict
				l2.Release()
				if b.Trial() || p.trials.Load() != 0 {
					t.Errorf("trial %v, %d counted open after the verdict", b.Trial(), p.trials.Load())
				}
			}
		})
	}
}

// TestTrialKeepsZoneOut checks a backend waiting for its trial does not
// count as healthy: its zone's share of traffic stays spilled.
func TestTrialKeepsZoneOut(t *testing.T) {
	p, b := ejectedPool(t)
	p.Backend(addr(1, 2)).SetState(StateEjected)
	b.OpenTrial()
	for range 100 {
		l, err := p.Pick(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if l.Backend().Zone() == "a" {
			t.Fatalf("a pick went to %s, of a zone whose backends are all ejected", l.Backend().Address())
		}
		l.Release()
	}
}

func TestWatchFiresWhenBackendGoesOut(t *testing.T) {
	cases := []struct {
		name  string
		out   func(p *Pool, b *Backend)
		fires bool
	}{
		{"ejected", func(p *Pool, b *Backend) { b.SetState(StateEjected) }, true},
		{"down", func(p *Pool, b *Backend) { b.SetState(StateDown) }, true},
		{"drained", func(p *Pool, b *Backend) { b.SetDrained(true) }, true},
		{"zone drained", func(p *Pool, b *Backend) { p.SetZoneDrained("a", true) }, true},
		{"other zone drained", func(p *Pool, b *Backend) { p.SetZoneDrained("b", true) }, false},
		// Requests on a backend that leaves the set finish where they are.
		{"removed", func(p *Pool, b *Backend) { p.Update([]Spec{spec(2, 1, 1)}) }, false},
		{"penalised", func(p *Pool, b *Backend) { b.Penalize(3) }, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := testPool(Options{LocalZone: "a", PenaltyHalfLife: 1e9})
			p.Update([]Spec{spec(1, 1, 1), spec(2, 1, 1)})
			l, err := p.Pick(context.Background(), nil)
			if err != nil || l.Backend().Zone() != "a" {
				t.Fatalf("pick: %v on %v", err, l.Backend())
			}
			var fired atomic.Int32
			w := Watch{W: watcherFunc(func() {
				fired.Add(1)
				// The pool's locks are released: a watcher may pick.
				if l2, err := p.Pick(context.Background(), nil); err == nil {
					l2.Release()
				}
			})}
			quiet := Watch{W: watcherFunc(func() { t.Error("an unwatched watch fired") })}
			l.Watch(&w)
			l.Watch(&quiet)
			l.Unwatch(&quiet)
			c.out(p, l.Backend())
			c.out(p, l.Backend()) // a second time changes nothing
			if got, want := fired.Load(), map[bool]int32{true: 1, false: 0}[c.fires]; got != want {
				t.Fatalf("watch fired %d times, want %d", got, want)
			}
			l.Unwatch(&w) // after firing: nothing to undo
			l.Release()
		})
	}
}

type watcherFunc func()

func (f watcherFunc) BackendOut() { f() }
