package balancer

import (
	"math"
	"testing"
	"time"
)

// rampShare returns the backend's effective weight as a share of its full
// weight at the pool clock's now.
func rampShare(p *Pool, b *Backend) float64 {
	w := fixedWeight(b.spec.Load())
	return float64(b.rampWeight(w, p.opts().SlowStart, &clock{p: p})) / float64(w)
}

// TestSlowStartRamp: a backend that joins a serving pool ramps from about
// 10% of its weight to 100% over slow_start, linearly, then leaves the ramp.
func TestSlowStartRamp(t *testing.T) {
	clk := newClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	p := testPool(Options{LocalZone: "a", SlowStart: 10 * time.Second}, clk.option())
	p.Update([]Spec{spec(1, 1, 1)})
	old := p.Backend(addr(1, 1))
	if share := rampShare(p, old); share != 1 {
		t.Fatalf("backend of the first set ramps: share %.3f", share)
	}
	p.Update([]Spec{spec(1, 1, 1), spec(1, 2, 4)})
	b := p.Backend(addr(1, 2))
	tests := []struct {
		at   time.Duration
		want float64
	}{
		{0, 0.1}, {500 * time.Millisecond, 0.1}, {time.Second, 0.1}, {2500 * time.Millisecond, 0.25},
		{5 * time.Second, 0.5}, {9900 * time.Millisecond, 0.99}, {10 * time.Second, 1}, {time.Hour, 1},
	}
	start := clk.Now()
	for _, tt := range tests {
		clk.set(start.Add(tt.at))
		if got := rampShare(p, b); math.Abs(got-tt.want) > 0.002 {
			t.Errorf("at %v: share %.4f, want %.4f", tt.at, got, tt.want)
		}
	}
	if b.rampFrom.Load() != 0 {
		t.Error("finished ramp not cleared")
	}
}

// TestSlowStartShapesTraffic: while ramping, a backend's share of held
// requests follows its effective weight (least connections balances
// in-flight per weight): f/(1+f) against an equal, fully ramped peer.
func TestSlowStartShapesTraffic(t *testing.T) {
	for _, tt := range []struct {
		at   time.Duration
		want float64 // share of new requests on the ramping backend
	}{
		{0, 0.1 / 1.1},
		{5 * time.Second, 0.5 / 1.5},
		{10 * time.Second, 0.5},
	} {
		t.Run(tt.at.String(), func(t *testing.T) {
			clk := newClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
			p := testPool(Options{LocalZone: "a", SlowStart: 10 * time.Second}, clk.option())
			p.Update([]Spec{spec(1, 1, 1)})
			p.Update([]Spec{spec(1, 1, 1), spec(1, 2, 1)})
			clk.Advance(tt.at)
			held := hold(t, p, 1000)
			defer releaseAll(held)
			n := 0
			for _, l := range held {
				if l.Backend().Address() == addr(1, 2) {
					n++
				}
			}
			if got := float64(n) / 1000; math.Abs(got-tt.want) > 0.01 {
				t.Errorf("ramping backend took %.3f of held requests, want %.3f", got, tt.want)
			}
		})
	}
}

// TestSlowStartBegins: which events start a ramp.
func TestSlowStartBegins(t *testing.T) {
	tests := []struct {
		name     string
		opts     Options
		epoch    bool // the pool clock starts at the Unix epoch
		event    func(p *Pool)
		wantRamp bool
		wantPick bool // the new or changed backend can be picked at once
	}{
		{
			name:     "added to a serving pool",
			opts:     Options{SlowStart: time.Minute},
			event:    func(p *Pool) { p.Update(spread(3, 1)) },
			wantRamp: true, wantPick: true,
		},
		{
			name:     "added while the clock reads the epoch",
			opts:     Options{SlowStart: time.Minute},
			epoch:    true,
			event:    func(p *Pool) { p.Update(spread(3, 1)) },
			wantRamp: true, wantPick: true,
		},
		{
			name:  "added with active checks waits for its first pass",
			opts:  Options{SlowStart: time.Minute, ActiveChecks: true},
			event: func(p *Pool) { p.Update(spread(3, 1)) },
			// pending: ramp began, but not pickable
			wantRamp: true, wantPick: false,
		},
		{
			name: "first pass after pending",
			opts: Options{SlowStart: time.Minute, ActiveChecks: true},
			event: func(p *Pool) {
				p.Update(spread(3, 1))
				p.Backend(addr(1, 3)).rampFrom.Store(0)
				p.Backend(addr(1, 3)).SetState(StateUp)
			},
			wantRamp: true, wantPick: true,
		},
		{
			name: "back from down",
			opts: Options{SlowStart: time.Minute},
			event: func(p *Pool) {
				p.Update(spread(3, 1))
				b := p.Backend(addr(1, 3))
				b.SetState(StateDown)
				b.rampFrom.Store(0)
				b.SetState(StateUp)
			},
			wantRamp: true, wantPick: true,
		},
		{
			name: "back from ejected",
			opts: Options{SlowStart: time.Minute},
			event: func(p *Pool) {
				p.Update(spread(3, 1))
				b := p.Backend(addr(1, 3))
				b.SetState(StateEjected)
				b.rampFrom.Store(0)
				b.SetState(StateUp)
			},
			wantRamp: true, wantPick: true,
		},
		{
			name: "kept across an update",
			opts: Options{SlowStart: time.Minute},
			event: func(p *Pool) {
				p.Update(spread(3, 1))
				p.Backend(addr(1, 3)).rampFrom.Store(0)
				p.Update(append(spread(3, 1), spec(2, 1, 1)))
			},
			wantRamp: false, wantPick: true,
		},
		{
			name:     "slow start off",
			opts:     Options{},
			event:    func(p *Pool) { p.Update(spread(3, 1)) },
			wantRamp: false, wantPick: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			if tt.epoch {
				start = time.Unix(0, 0)
			}
			clk := newClock(start)
			tt.opts.LocalZone = "a"
			p := testPool(tt.opts, clk.option())
			p.Update(spread(2, 1))
			tt.event(p)
			b := p.Backend(addr(1, 3))
			if got := b.rampFrom.Load() != 0; got != tt.wantRamp {
				t.Fatalf("ramping %v, want %v", got, tt.wantRamp)
			}
			if tt.wantRamp {
				if share := rampShare(p, b); math.Abs(share-0.1) > 0.001 {
					t.Errorf("share at the ramp's start %.3f, want 0.1", share)
				}
			}
			if got := b.Available(); got != tt.wantPick {
				t.Errorf("available %v, want %v", got, tt.wantPick)
			}
			for _, a := range []string{addr(1, 1), addr(1, 2)} {
				if x := p.Backend(a); x.rampFrom.Load() != 0 {
					t.Errorf("%s ramps too", x.Address())
				}
			}
		})
	}
}
