package balancer

import (
	"math"
	"testing"
	"time"
)

// penaltyPool returns a pool of two backends in zone a (the local zone)
// with a one-second penalty half-life on a manual clock.
func penaltyPool(t *testing.T) (*Pool, *fakeClock, *Backend, *Backend) {
	t.Helper()
	clk := newClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	p := testPool(Options{LocalZone: "a", PenaltyHalfLife: time.Second}, clk.option())
	p.Update([]Spec{spec(1, 1, 1), spec(1, 2, 1)})
	return p, clk, p.Backend(addr(1, 1)), p.Backend(addr(1, 2))
}

// TestPenaltyDecays: 2^n connections for n failures in a row, halving every
// half-life and falling linearly in between, cleared once it reaches 0.
func TestPenaltyDecays(t *testing.T) {
	for _, tt := range []struct {
		failures int
		at       time.Duration
		want     int64
	}{
		{1, 0, 2},
		{1, 999 * time.Millisecond, 2}, // 2 - 1×0.999, rounded down to whole connections
		{1, time.Second, 1},
		{1, 2 * time.Second, 0},
		{3, 0, 8},
		{3, 500 * time.Millisecond, 6},
		{3, time.Second, 4},
		{3, 1500 * time.Millisecond, 3},
		{3, 3 * time.Second, 1},
		{3, 4 * time.Second, 0},
		{5, 0, 32},
		{10, 0, 1024},
		{40, 0, 1024},
		{40, 10 * time.Second, 1},
		{40, time.Hour, 0},
		{0, 0, 0},
	} {
		_, clk, b, _ := penaltyPool(t)
		b.Penalize(tt.failures)
		clk.Advance(tt.at)
		if got := b.Penalty(); got != tt.want {
			t.Errorf("%d failures, %v later: penalty %d, want %d", tt.failures, tt.at, got, tt.want)
		}
		if tt.want == 0 && b.penalty.Load() != 0 {
			t.Errorf("%d failures, %v later: a penalty decayed to 0 is not cleared", tt.failures, tt.at)
		}
	}
}

// TestPenaltySteersPicks: a penalized backend takes no new request while
// its sibling has fewer requests in flight than the penalty, and takes its
// share again beyond that, so the penalty moves load without removing
// capacity. Success (Forgive) and coming back up end it at once.
func TestPenaltySteersPicks(t *testing.T) {
	p, _, failed, sibling := penaltyPool(t)
	failed.Penalize(2) // 4 connections
	held := hold(t, p, 4)
	for i, l := range held {
		if l.Backend() != sibling {
			t.Fatalf("pick %d went to the penalized backend with the sibling at %d in flight", i+1, i)
		}
	}
	// From here the two compare 4 against 4+n: they share the load again.
	held = append(held, hold(t, p, 20)...)
	if n := failed.InFlight(); n < 9 || n > 11 {
		t.Errorf("penalized backend holds %d of 24 requests, want 10 ±1 (the sibling 4 more)", n)
	}
	releaseAll(held)

	failed.Forgive()
	if got := failed.Penalty(); got != 0 {
		t.Fatalf("penalty %d after Forgive", got)
	}
	byAddr := map[*Backend]int{}
	for _, l := range hold(t, p, 10) {
		byAddr[l.Backend()]++
		defer l.Release()
	}
	if byAddr[failed] != 5 {
		t.Errorf("after Forgive the backends split 10 picks %d/%d, want 5/5", byAddr[failed], byAddr[sibling])
	}

	failed.Penalize(3)
	failed.SetState(StateDown)
	failed.SetState(StateUp)
	if got := failed.Penalty(); got != 0 {
		t.Errorf("penalty %d after the backend came back up", got)
	}
}

// TestPenaltyOff: with no half-life, Penalize does nothing; a reload that
// turns penalties off makes picks ignore the ones already set.
func TestPenaltyOff(t *testing.T) {
	p, _, failed, sibling := penaltyPool(t)
	o := p.Options()
	o.PenaltyHalfLife = 0
	p.Configure(o)
	failed.Penalize(5)
	if failed.penalty.Load() != 0 {
		t.Fatal("Penalize set a penalty with penalties off")
	}

	o.PenaltyHalfLife = time.Second
	p.Configure(o)
	failed.Penalize(5)
	o.PenaltyHalfLife = 0
	p.Configure(o)
	holdOn(sibling, 1)
	defer holdOn(sibling, -1)
	l := hold(t, p, 1)[0]
	defer l.Release()
	if l.Backend() != failed {
		t.Error("a penalty set before penalties were turned off still steered a pick")
	}
}

// TestPenaltyIgnoresCapacity: max_conns counts real requests only, so a
// penalized backend below its cap still takes a request when its sibling
// is full, and a penalty never turns into ErrNoCapacity.
func TestPenaltyIgnoresCapacity(t *testing.T) {
	clk := newClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	p := testPool(Options{LocalZone: "a", PenaltyHalfLife: time.Second}, clk.option())
	p.Update([]Spec{spec(1, 1, 1).withMax(2), spec(1, 2, 1).withMax(2)})
	failed, sibling := p.Backend(addr(1, 1)), p.Backend(addr(1, 2))
	failed.Penalize(8) // 256 connections, far over the cap
	held := hold(t, p, 4)
	defer releaseAll(held)
	if sibling.InFlight() != 2 || failed.InFlight() != 2 {
		t.Errorf("in flight: sibling %d, penalized %d; want 2 and 2", sibling.InFlight(), failed.InFlight())
	}
}

// TestPenaltyTwoChoices: the two-random-choices path for large zones
// compares loads with penalties too.
func TestPenaltyTwoChoices(t *testing.T) {
	p, _, failed, sibling := penaltyPool(t)
	p.p2cAbove = 1 // two backends in the zone: always two choices
	failed.Penalize(4)
	for i := range 15 {
		l := hold(t, p, 1)[0]
		defer l.Release()
		if l.Backend() == failed {
			t.Fatalf("pick %d went to the penalized backend (penalty 16) with the sibling at %d", i+1, sibling.InFlight()-1)
		}
	}
}

// TestPenaltyPickAllocs: penalties keep the pick path free of allocations.
func TestPenaltyPickAllocs(t *testing.T) {
	p, _, failed, _ := penaltyPool(t)
	failed.Penalize(3)
	allocs := testing.AllocsPerRun(100, func() {
		l, err := p.Pick(t.Context(), nil)
		if err != nil {
			t.Fatal(err)
		}
		l.Release()
	})
	if allocs != 0 || math.IsNaN(allocs) {
		t.Errorf("%v allocations per pick with a penalty, want 0", allocs)
	}
}

// TestOvertakenPenalty: an attempt overtaken by a hedge gives its backend
// one failure's penalty, never lowers a larger one, and a success ends it.
func TestOvertakenPenalty(t *testing.T) {
	_, clk, a, _ := penaltyPool(t)
	a.Overtaken()
	if got := a.Penalty(); got != 2 {
		t.Fatalf("penalty after an overtaken attempt = %d, want 2", got)
	}
	a.Penalize(4)
	a.Overtaken()
	if got := a.Penalty(); got != 16 {
		t.Fatalf("an overtaken attempt lowered a penalty of 16 to %d", got)
	}
	a.Forgive()
	clk.Advance(time.Millisecond)
	if got := a.Penalty(); got != 0 {
		t.Fatalf("penalty after a success = %d", got)
	}
}
