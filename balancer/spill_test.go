package balancer

import (
	"fmt"
	"math"
	"testing"
)

// zoneSpecs returns n backends of weight w in zone z (1: "a", 2: "b", ...).
func zoneSpecs(z, n, w int) []Spec {
	out := make([]Spec, n)
	for i := range out {
		out[i] = spec(z, i+1, w)
	}
	return out
}

// setDown marks the first n backends of zone z down.
func setDown(p *Pool, z, n int) {
	for i := range n {
		p.Backend(addr(z, i+1)).SetState(StateDown)
	}
}

// TestSpillProportions: the local zone keeps h/spill_below of new requests
// once its healthy share h falls below spill_below; the rest spreads over
// the other zones in proportion to their healthy capacity (summed weights).
// Shares must match the rule within 2 percentage points over 30,000 picks.
func TestSpillProportions(t *testing.T) {
	const picks = 30000
	tests := []struct {
		name  string
		spill float64
		specs [][]Spec
		setup func(t *testing.T, p *Pool) []Lease // returns held requests
		want  map[string]float64
	}{
		{
			name:  "healthy local zone keeps everything",
			spill: 0.7,
			specs: [][]Spec{zoneSpecs(1, 10, 1), zoneSpecs(2, 10, 1), zoneSpecs(3, 5, 2)},
			want:  map[string]float64{"a": 1},
		},
		{
			name:  "local at its threshold keeps everything",
			spill: 0.7,
			specs: [][]Spec{zoneSpecs(1, 10, 1), zoneSpecs(2, 10, 1)},
			setup: func(t *testing.T, p *Pool) []Lease { setDown(p, 1, 3); return nil },
			want:  map[string]float64{"a": 1},
		},
		{
			name:  "local at 60% spills a seventh",
			spill: 0.7,
			specs: [][]Spec{zoneSpecs(1, 10, 1), zoneSpecs(2, 10, 1), zoneSpecs(3, 5, 1)},
			setup: func(t *testing.T, p *Pool) []Lease { setDown(p, 1, 4); return nil },
			// local 0.6/0.7; the rest 10:5 over b and c
			want: map[string]float64{"a": 6.0 / 7, "b": 1.0 / 7 * 2 / 3, "c": 1.0 / 7 / 3},
		},
		{
			name:  "local at 30% keeps three sevenths",
			spill: 0.7,
			specs: [][]Spec{zoneSpecs(1, 10, 1), zoneSpecs(2, 4, 1), zoneSpecs(3, 4, 1)},
			setup: func(t *testing.T, p *Pool) []Lease { setDown(p, 1, 7); return nil },
			want:  map[string]float64{"a": 3.0 / 7, "b": 2.0 / 7, "c": 2.0 / 7},
		},
		{
			name:  "capacity counts weights and health",
			spill: 0.5,
			specs: [][]Spec{zoneSpecs(1, 4, 1), zoneSpecs(2, 2, 3), zoneSpecs(3, 6, 1)},
			setup: func(t *testing.T, p *Pool) []Lease {
				setDown(p, 1, 4) // local gone: everything spills
				setDown(p, 3, 3) // c: 3 healthy of weight 1; b: 2 of weight 3
				return nil
			},
			want: map[string]float64{"b": 2.0 / 3, "c": 1.0 / 3},
		},
		{
			name:  "drained other zone gets nothing",
			spill: 0.7,
			specs: [][]Spec{zoneSpecs(1, 10, 1), zoneSpecs(2, 10, 1), zoneSpecs(3, 10, 1)},
			setup: func(t *testing.T, p *Pool) []Lease {
				setDown(p, 1, 10)
				p.SetZoneDrained("c", true)
				return nil
			},
			want: map[string]float64{"b": 1},
		},
		{
			name:  "spill off keeps a degraded local zone",
			spill: 0,
			specs: [][]Spec{zoneSpecs(1, 10, 1), zoneSpecs(2, 10, 1)},
			setup: func(t *testing.T, p *Pool) []Lease { setDown(p, 1, 8); return nil },
			want:  map[string]float64{"a": 1},
		},
		{
			name:  "local zone at max_conns spills by capacity",
			spill: 0.7,
			specs: [][]Spec{{spec(1, 1, 1).withMax(1), spec(1, 2, 1).withMax(1)}, zoneSpecs(2, 3, 1), zoneSpecs(3, 1, 1)},
			setup: func(t *testing.T, p *Pool) []Lease { return hold(t, p, 2) },
			want:  map[string]float64{"b": 3.0 / 4, "c": 1.0 / 4},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := testPool(Options{LocalZone: "a", SpillBelow: tt.spill, PanicBelow: 0.2})
			var all []Spec
			for _, z := range tt.specs {
				all = append(all, z...)
			}
			p.Update(all)
			var held []Lease
			if tt.setup != nil {
				held = tt.setup(t, p)
			}
			_, byZone := countPicks(t, p, picks, nil)
			for _, z := range []string{"a", "b", "c"} {
				got := float64(byZone[z]) / picks
				if math.Abs(got-tt.want[z]) > 0.02 {
					t.Errorf("zone %s got %.4f of picks, want %.4f ±0.02 (counts %v)", z, got, tt.want[z], byZone)
				}
			}
			if held == nil {
				if got, want := p.Status().SpillRatio, 1-tt.want["a"]; math.Abs(got-want) > 1e-9 {
					t.Errorf("Status().SpillRatio = %.4f, want %.4f", got, want)
				}
			}
			releaseAll(held)
		})
	}
}

// TestPanicBalancesOverEveryBackend: below panic_below, health is ignored
// and the zone preference with it, so a failing health check cannot black
// out the pool; at or above it, down backends get nothing.
func TestPanicBalancesOverEveryBackend(t *testing.T) {
	tests := []struct {
		name      string
		down      int // of 8 backends over 2 zones
		wantPanic bool
	}{
		{name: "half down is not panic", down: 4},
		{name: "five of eight down is panic", down: 5, wantPanic: true},
		{name: "all down is panic", down: 8, wantPanic: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := testPool(Options{LocalZone: "a", SpillBelow: 0.7, PanicBelow: 0.5})
			p.Update(spread(8, 2))
			downs := map[string]bool{}
			for _, b := range p.Backends()[:tt.down] {
				b.SetState(StateDown)
				downs[b.Address()] = true
			}
			st := p.Status()
			if st.Panic != tt.wantPanic || !st.Available() {
				t.Fatalf("Status: panic %v available %v, want panic %v and available", st.Panic, st.Available(), tt.wantPanic)
			}
			const picks = 16000
			byAddr, _ := countPicks(t, p, picks, nil)
			for _, b := range p.Backends() {
				got := float64(byAddr[b.Address()]) / picks
				switch {
				case tt.wantPanic && math.Abs(got-1.0/8) > 0.02:
					t.Errorf("%s (down %v) got %.3f of picks in panic, want 0.125", b.Address(), downs[b.Address()], got)
				case !tt.wantPanic && downs[b.Address()] && got != 0:
					t.Errorf("down %s got %.3f of picks outside panic", b.Address(), got)
				}
			}
		})
	}
}

// TestStatusReportsZones: the observers' view matches the pool.
func TestStatusReportsZones(t *testing.T) {
	p := testPool(Options{LocalZone: "a", SpillBelow: 0.8, PanicBelow: 0.3})
	p.Update(spread(6, 3))
	p.Backend(addr(1, 1)).SetState(StateDown)
	p.SetZoneDrained("c", true)
	held := hold(t, p, 3)
	defer releaseAll(held)
	st := p.Status()
	var inFlight int64
	for i := range st.Zones {
		inFlight += st.Zones[i].InFlight
		st.Zones[i].InFlight = 0
	}
	got := fmt.Sprint(st.Zones)
	want := "[{a 2 1 0 false} {b 2 2 0 false} {c 2 0 0 true}]"
	if got != want || inFlight != 3 {
		t.Errorf("zones %s with %d in flight, want %s with 3", got, inFlight, want)
	}
	if st.Total != 6 || st.Healthy != 3 || st.Panic || math.Abs(st.SpillRatio-(1-0.5/0.8)) > 1e-9 {
		t.Errorf("status %+v", st)
	}
	if share := st.Zones[0].HealthyShare(); share != 0.5 {
		t.Errorf("HealthyShare %v, want 0.5", share)
	}
}
