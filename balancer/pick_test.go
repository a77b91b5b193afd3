package balancer

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"
)

// TestPickChoosesByRules: one pick against a prepared pool, case by case.
func TestPickChoosesByRules(t *testing.T) {
	type setup func(t *testing.T, p *Pool, tried *Tried)
	tests := []struct {
		name    string
		opts    Options
		specs   []Spec
		setup   setup
		want    []string // acceptable addresses
		wantErr error
	}{
		{
			name:    "empty pool",
			opts:    Options{LocalZone: "a"},
			wantErr: ErrNoBackend,
		},
		{
			name:  "local zone first",
			opts:  Options{LocalZone: "b"},
			specs: spread(6, 3),
			want:  []string{addr(2, 1), addr(2, 2)},
		},
		{
			name:  "least in-flight wins",
			opts:  Options{LocalZone: "a"},
			specs: []Spec{spec(1, 1, 1), spec(1, 2, 1), spec(1, 3, 1)},
			setup: func(t *testing.T, p *Pool, _ *Tried) {
				holdOn(p.Backend(addr(1, 1)), 3)
				holdOn(p.Backend(addr(1, 2)), 1)
				holdOn(p.Backend(addr(1, 3)), 2)
			},
			want: []string{addr(1, 2)},
		},
		{
			name:  "weight divides in-flight",
			opts:  Options{LocalZone: "a"},
			specs: []Spec{spec(1, 1, 1), spec(1, 2, 4)},
			setup: func(t *testing.T, p *Pool, _ *Tried) {
				holdOn(p.Backend(addr(1, 1)), 1) // (1+1)/1 = 2
				holdOn(p.Backend(addr(1, 2)), 6) // (6+1)/4 = 1.75
			},
			want: []string{addr(1, 2)},
		},
		{
			name:  "weight below one counts as one",
			opts:  Options{LocalZone: "a"},
			specs: []Spec{spec(1, 1, 0), spec(1, 2, -3)},
			setup: func(t *testing.T, p *Pool, _ *Tried) {
				holdOn(p.Backend(addr(1, 1)), 2)
			},
			want: []string{addr(1, 2)},
		},
		{
			name:  "no local zone balances over all",
			opts:  Options{},
			specs: spread(3, 3),
			setup: func(t *testing.T, p *Pool, _ *Tried) {
				holdOn(p.Backend(addr(1, 1)), 1)
				holdOn(p.Backend(addr(2, 1)), 1)
			},
			want: []string{addr(3, 1)},
		},
		{
			name:  "unknown local zone balances over all",
			opts:  Options{LocalZone: "z"},
			specs: spread(2, 2),
			setup: func(t *testing.T, p *Pool, _ *Tried) {
				holdOn(p.Backend(addr(1, 1)), 1)
			},
			want: []string{addr(2, 1)},
		},
		{
			name:  "down, ejected and pending backends are skipped",
			opts:  Options{LocalZone: "a"},
			specs: []Spec{spec(1, 1, 1), spec(1, 2, 1), spec(1, 3, 1), spec(1, 4, 1)},
			setup: func(t *testing.T, p *Pool, _ *Tried) {
				p.Backend(addr(1, 1)).SetState(StateDown)
				p.Backend(addr(1, 2)).SetState(StateEjected)
				p.Backend(addr(1, 3)).SetState(StatePending)
				holdOn(p.Backend(addr(1, 4)), 100)
			},
			want: []string{addr(1, 4)},
		},
		{
			name:  "drained backend is skipped",
			opts:  Options{LocalZone: "a"},
			specs: []Spec{spec(1, 1, 1), spec(1, 2, 1)},
			setup: func(t *testing.T, p *Pool, _ *Tried) {
				p.Backend(addr(1, 1)).SetDrained(true)
				holdOn(p.Backend(addr(1, 2)), 100)
			},
			want: []string{addr(1, 2)},
		},
		{
			name:  "drained local zone spills everything",
			opts:  Options{LocalZone: "a", SpillBelow: 0.7},
			specs: spread(4, 2),
			setup: func(t *testing.T, p *Pool, _ *Tried) { p.SetZoneDrained("a", true) },
			want:  []string{addr(2, 1), addr(2, 2)},
		},
		{
			name:  "local zone down spills without a spill threshold",
			opts:  Options{LocalZone: "a"},
			specs: spread(4, 2),
			setup: func(t *testing.T, p *Pool, _ *Tried) {
				p.Backend(addr(1, 1)).SetState(StateDown)
				p.Backend(addr(1, 2)).SetState(StateDown)
			},
			want: []string{addr(2, 1), addr(2, 2)},
		},
		{
			name:  "all down without panic",
			opts:  Options{LocalZone: "a"},
			specs: spread(2, 2),
			setup: func(t *testing.T, p *Pool, _ *Tried) {
				for _, b := range p.Backends() {
					b.SetState(StateDown)
				}
			},
			wantErr: ErrNoBackend,
		},
		{
			name:  "local zone full spills",
			opts:  Options{LocalZone: "a"},
			specs: []Spec{spec(1, 1, 1).withMax(2), spec(2, 1, 1)},
			setup: func(t *testing.T, p *Pool, _ *Tried) {
				holdOn(p.Backend(addr(1, 1)), 2)
				holdOn(p.Backend(addr(2, 1)), 50)
			},
			want: []string{addr(2, 1)},
		},
		{
			name:  "full backend is passed over for a busier one",
			opts:  Options{LocalZone: "a"},
			specs: []Spec{spec(1, 1, 1).withMax(1), spec(1, 2, 1)},
			setup: func(t *testing.T, p *Pool, _ *Tried) {
				holdOn(p.Backend(addr(1, 1)), 1)
				holdOn(p.Backend(addr(1, 2)), 9)
			},
			want: []string{addr(1, 2)},
		},
		{
			name:  "everything full",
			opts:  Options{LocalZone: "a"},
			specs: []Spec{spec(1, 1, 1).withMax(1), spec(2, 1, 1).withMax(1)},
			setup: func(t *testing.T, p *Pool, _ *Tried) {
				holdOn(p.Backend(addr(1, 1)), 1)
				holdOn(p.Backend(addr(2, 1)), 1)
			},
			wantErr: ErrNoCapacity,
		},
		{
			name:  "retry goes to an untried zone",
			opts:  Options{LocalZone: "a"},
			specs: []Spec{spec(1, 1, 1), spec(1, 2, 1), spec(2, 1, 1)},
			setup: func(t *testing.T, p *Pool, tried *Tried) {
				tried.Add(p.Backend(addr(1, 1)))
				holdOn(p.Backend(addr(2, 1)), 10) // busier, but a new zone
			},
			want: []string{addr(2, 1)},
		},
		{
			name:  "retry skips an untried zone with nothing available",
			opts:  Options{LocalZone: "a"},
			specs: []Spec{spec(1, 1, 1), spec(1, 2, 1), spec(2, 1, 1), spec(3, 1, 1)},
			setup: func(t *testing.T, p *Pool, tried *Tried) {
				tried.Add(p.Backend(addr(1, 1)))
				p.Backend(addr(2, 1)).SetState(StateDown)
			},
			want: []string{addr(3, 1)},
		},
		{
			name:  "retry with every zone tried takes an untried backend",
			opts:  Options{LocalZone: "a"},
			specs: []Spec{spec(1, 1, 1), spec(1, 2, 1), spec(2, 1, 1)},
			setup: func(t *testing.T, p *Pool, tried *Tried) {
				tried.Add(p.Backend(addr(1, 1)))
				tried.Add(p.Backend(addr(2, 1)))
			},
			want: []string{addr(1, 2)},
		},
		{
			name:  "retry with everything tried",
			opts:  Options{LocalZone: "a"},
			specs: spread(2, 2),
			setup: func(t *testing.T, p *Pool, tried *Tried) {
				tried.Add(p.Backend(addr(1, 1)))
				tried.Add(p.Backend(addr(2, 1)))
			},
			wantErr: ErrNoBackend,
		},
		{
			name:  "retry where the untried backends are full",
			opts:  Options{LocalZone: "a"},
			specs: []Spec{spec(1, 1, 1), spec(2, 1, 1).withMax(1)},
			setup: func(t *testing.T, p *Pool, tried *Tried) {
				tried.Add(p.Backend(addr(1, 1)))
				holdOn(p.Backend(addr(2, 1)), 1)
			},
			wantErr: ErrNoCapacity,
		},
		{
			name:  "panic picks a down backend",
			opts:  Options{LocalZone: "a", PanicBelow: 0.5},
			specs: spread(4, 2),
			setup: func(t *testing.T, p *Pool, _ *Tried) {
				for _, a := range []string{addr(1, 1), addr(1, 2), addr(2, 1)} {
					p.Backend(a).SetState(StateDown)
				}
				holdOn(p.Backend(addr(2, 2)), 5)
			},
			want: []string{addr(1, 1), addr(1, 2), addr(2, 1)},
		},
		{
			name:  "panic still honours drains and tries",
			opts:  Options{LocalZone: "a", PanicBelow: 0.9},
			specs: spread(4, 2),
			setup: func(t *testing.T, p *Pool, tried *Tried) {
				p.Backend(addr(1, 1)).SetState(StateDown)
				p.Backend(addr(1, 2)).SetDrained(true)
				tried.Add(p.Backend(addr(2, 1)))
				holdOn(p.Backend(addr(2, 2)), 5)
			},
			want: []string{addr(1, 1), addr(2, 2)},
		},
		{
			name:  "panic retry prefers an untried zone",
			opts:  Options{LocalZone: "a", PanicBelow: 0.9},
			specs: []Spec{spec(1, 1, 1), spec(1, 2, 1), spec(2, 1, 1)},
			setup: func(t *testing.T, p *Pool, tried *Tried) {
				for _, b := range p.Backends() {
					b.SetState(StateDown)
				}
				tried.Add(p.Backend(addr(1, 1)))
				holdOn(p.Backend(addr(2, 1)), 5) // busier, but a new zone
			},
			want: []string{addr(2, 1)},
		},
		{
			name:  "panic retry with every zone tried",
			opts:  Options{LocalZone: "a", PanicBelow: 0.9},
			specs: []Spec{spec(1, 1, 1), spec(1, 2, 1), spec(2, 1, 1)},
			setup: func(t *testing.T, p *Pool, tried *Tried) {
				p.Backend(addr(1, 2)).SetState(StateDown)
				tried.Add(p.Backend(addr(1, 1)))
				tried.Add(p.Backend(addr(2, 1)))
			},
			want: []string{addr(1, 2)},
		},
		{
			name:  "at the panic threshold health is trusted",
			opts:  Options{LocalZone: "a", PanicBelow: 0.5},
			specs: spread(4, 2),
			setup: func(t *testing.T, p *Pool, _ *Tried) {
				p.Backend(addr(1, 1)).SetState(StateDown)
				p.Backend(addr(1, 2)).SetState(StateDown)
			},
			want: []string{addr(2, 1), addr(2, 2)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := testPool(tt.opts)
			p.Update(tt.specs)
			var tried Tried
			if tt.setup != nil {
				tt.setup(t, p, &tried)
			}
			checkTally(t, p)
			for range 20 { // every draw of the random source agrees
				l, err := p.Pick(t.Context(), &tried)
				b := l.Backend()
				if tt.wantErr != nil {
					if !errors.Is(err, tt.wantErr) {
						t.Fatalf("got %v, %v; want error %v", b, err, tt.wantErr)
					}
					continue
				}
				if err != nil {
					t.Fatalf("pick: %v", err)
				}
				ok := false
				for _, w := range tt.want {
					ok = ok || b.Address() == w
				}
				if !ok {
					t.Fatalf("picked %s, want one of %v", b.Address(), tt.want)
				}
				l.Release()
			}
		})
	}
}

// TestPickTiesAreFair: idle backends tie; every tie must be equally likely,
// whether the tie set is small, partial (some backends busy) or larger than
// the scan's tie buffer.
func TestPickTiesAreFair(t *testing.T) {
	tests := []struct {
		name   string
		n      int // backends in the one zone
		busy   int // the first busy ones hold a request
		p2c    bool
		rounds int
	}{
		{name: "all idle", n: 6, rounds: 15000},
		{name: "partial tie", n: 10, busy: 7, rounds: 15000},
		{name: "ties beyond the buffer", n: tieBuf*2 + 6, rounds: 50000},
		{name: "two choices", n: 200, p2c: true, rounds: 50000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := testPool(Options{LocalZone: "a"}, WithRand(seeded(7)))
			if !tt.p2c {
				p.p2cAbove = math.MaxInt
			}
			specs := make([]Spec, tt.n)
			for i := range specs {
				specs[i] = spec(1, i+1, 1)
			}
			p.Update(specs)
			bs := p.Backends()
			for _, b := range bs[:tt.busy] {
				holdOn(b, 1)
			}
			got, _ := countPicks(t, p, tt.rounds, nil)
			free := tt.n - tt.busy
			want := float64(tt.rounds) / float64(free)
			// Chi-square against uniform; 1.5x the degrees of freedom is far
			// beyond chance for these seeds and sizes yet catches a bias of a
			// few percent on any backend.
			var chi float64
			for _, b := range bs[tt.busy:] {
				d := float64(got[b.Address()]) - want
				chi += d * d / want
			}
			if chi > 1.5*float64(free-1)+10 {
				t.Errorf("chi-square %.1f over %d idle backends; counts %v", chi, free, got)
			}
			for _, b := range bs[:tt.busy] {
				if got[b.Address()] != 0 {
					t.Errorf("busy backend %s got %d picks", b.Address(), got[b.Address()])
				}
			}
		})
	}
}

// TestTriedZeroValue: the zero Tried and a nil *Tried mean "nothing tried".
func TestTriedZeroValue(t *testing.T) {
	var tr Tried
	var nilTried *Tried
	p := testPool(Options{})
	p.Update(spread(2, 2))
	b := p.Backends()[0]
	if tr.Len() != 0 || tr.Has(b) || tr.HasZone("a") || nilTried.Len() != 0 || nilTried.Has(b) || nilTried.HasZone("a") {
		t.Fatal("empty Tried reports something tried")
	}
	tr.Add(b)
	if tr.Len() != 1 || !tr.Has(b) || !tr.HasZone(b.Zone()) || tr.Has(p.Backends()[1]) || tr.HasZone("zz") {
		t.Fatal("Tried does not report what was added")
	}
}

// TestPickDoesNotAllocate: the request path allocates nothing, for first
// attempts and retries alike, at every pool size (a Tried stays on the
// caller's stack).
func TestPickDoesNotAllocate(t *testing.T) {
	for _, n := range []int{6, 100, 1000} {
		p := NewPool("web", Options{LocalZone: "a", SpillBelow: 0.7, PanicBelow: 0.5, SlowStart: time.Minute, QueueSize: 4, QueueTimeout: time.Second})
		p.Update(spread(n, 3))
		p.Update(append(spread(n, 3), spec(1, 250, 1))) // one ramping backend
		ctx := context.Background()
		allocs := testing.AllocsPerRun(1000, func() {
			var tried Tried
			l, err := p.Pick(ctx, &tried)
			if err != nil {
				t.Fatal(err)
			}
			tried.Add(l.Backend())
			l.Release()
			l, err = p.Pick(ctx, &tried)
			if err != nil {
				t.Fatal(err)
			}
			l.Release()
		})
		if allocs != 0 {
			t.Errorf("%d backends: %.1f allocations per two picks, want 0", n, allocs)
		}
	}
}
