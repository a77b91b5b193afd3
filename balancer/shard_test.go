package balancer

import (
	"slices"
	"testing"
)

func TestShardsFor(t *testing.T) {
	for _, tt := range []struct{ cores, want int }{
		{0, 1}, {1, 1}, {2, 2}, {3, 4}, {8, 8}, {9, 16}, {64, 16},
	} {
		if got := shardsFor(tt.cores); got != tt.want {
			t.Errorf("shardsFor(%d) = %d, want %d", tt.cores, got, tt.want)
		}
	}
}

// shardedPool returns a pool of four shards whose picks run in the shard
// *cur says, as if on that core.
func shardedPool(cur *int, specs []Spec) *Pool {
	p := NewPool("web", Options{LocalZone: "a"}, WithRand(seeded(1)), WithShards(4))
	p.hint = func() int { return *cur }
	p.Update(specs)
	return p
}

// TestShardsCountApart: each core's picks compare and write only its own
// shard's counts, the backend's in-flight count is their sum, and a
// release ends the request in the shard that counted it.
func TestShardsCountApart(t *testing.T) {
	cur := 0
	p := shardedPool(&cur, []Spec{spec(1, 1, 1), spec(1, 2, 1)})
	a, b := p.Backend(addr(1, 1)), p.Backend(addr(1, 2))
	holdOn(a, 5) // shard 0 sees a busy

	cur = 0
	l0 := hold(t, p, 1)[0]
	if l0.Backend() != b {
		t.Fatalf("shard 0 picked %s, want the idle backend", l0.Backend().Address())
	}
	// Shard 1 saw none of it: both are idle there, so its picks split.
	cur = 1
	held := hold(t, p, 4)
	n := map[*Backend]int{}
	for _, l := range held {
		n[l.Backend()]++
		if l.shard != 1 {
			t.Errorf("a pick on core 1 counted in shard %d", l.shard)
		}
	}
	if n[a] != 2 || n[b] != 2 {
		t.Errorf("shard 1 split 4 picks %d/%d, want 2/2 (its own view)", n[a], n[b])
	}
	if got := a.InFlight(); got != 7 {
		t.Errorf("in flight on a: %d, want the sum 5+2", got)
	}
	// Released from another core, each request still ends in its shard.
	cur = 3
	releaseAll(held)
	l0.Release()
	for i, c := range [][]*counter{{&a.counts[0], &a.counts[1]}, {&b.counts[0], &b.counts[1]}} {
		want := []int64{5, 0}
		if i == 1 {
			want = []int64{0, 0}
		}
		if got := []int64{c[0].n.Load(), c[1].n.Load()}; !slices.Equal(got, want) {
			t.Errorf("backend %d: shard counts %v, want %v", i, got, want)
		}
	}
	holdOn(a, -5)
}

// TestShardsOffWithMaxConns: a set with a capped backend counts every
// request in shard 0, so the cap holds whichever core picks.
func TestShardsOffWithMaxConns(t *testing.T) {
	cur := 0
	p := shardedPool(&cur, []Spec{spec(1, 1, 1).withMax(2), spec(1, 2, 1)})
	var held []Lease
	for i := range 8 {
		cur = i % 4
		held = append(held, hold(t, p, 1)[0])
	}
	defer releaseAll(held)
	capped := p.Backend(addr(1, 1))
	if got := capped.InFlight(); got != 2 {
		t.Errorf("capped backend holds %d, want its max_conns 2", got)
	}
	for _, l := range held {
		if l.shard != 0 {
			t.Fatalf("a pick on a capped set counted in shard %d", l.shard)
		}
	}
}

// TestShardsRetire: a removed backend with requests in several shards
// retires when the last of them ends, not before.
func TestShardsRetire(t *testing.T) {
	cur := 0
	p := shardedPool(&cur, []Spec{spec(1, 1, 1)})
	var held []Lease
	for i := range 3 {
		cur = i
		held = append(held, hold(t, p, 1)[0])
	}
	p.Update([]Spec{spec(1, 2, 1)})
	for i, l := range held {
		if got := len(p.Retiring()); got != 1 {
			t.Fatalf("after %d of 3 releases: %d retiring, want 1", i, got)
		}
		l.Release()
	}
	if got := p.Retiring(); len(got) != 0 {
		t.Errorf("still retiring %v after the last release", got)
	}
}

// TestShardsKeepLoadEven: with picks spread over four cores' shards, each
// shard balances its own requests and the sum stays even: the spread of
// in-flight counts across backends stays within a few requests of what one
// exact, pool-wide count keeps under the same picks and releases.
func TestShardsKeepLoadEven(t *testing.T) {
	exact := loadSpread(t, 1)
	sharded := loadSpread(t, 4)
	t.Logf("worst spread across 6 backends: %d with one shard, %d with four", exact, sharded)
	// Each shard keeps its own counts as even as one exact count would;
	// four shards can add their differences up.
	if sharded > 4*max(exact, 1) {
		t.Errorf("spread %d with four shards, want at most 4x the exact %d", sharded, exact)
	}
}

// loadSpread plays 400 picks from cores taking turns unevenly, with
// requests ending out of order, and returns the worst spread of in-flight
// counts across the backends.
func loadSpread(t *testing.T, shards int) int64 {
	cur := 0
	p := NewPool("web", Options{LocalZone: "a"}, WithRand(seeded(1)), WithShards(shards))
	p.hint = func() int { return cur }
	p.Update(spread(6, 1))
	var held []Lease
	worst := int64(0)
	for i := range 400 {
		cur = (i * 7) % 4
		held = append(held, hold(t, p, 1)[0])
		if i%3 == 2 {
			j := (i * 5) % len(held)
			held[j].Release()
			held = slices.Delete(held, j, j+1)
		}
		lo, hi := int64(1<<62), int64(0)
		for _, b := range p.Backends() {
			lo, hi = min(lo, b.InFlight()), max(hi, b.InFlight())
		}
		worst = max(worst, hi-lo)
	}
	releaseAll(held)
	return worst
}

// TestBusyTieGoesToProgress: of two equally busy backends, a pick goes to
// the one whose requests ended most recently. A backend that hangs with
// one request stuck on it loses every such tie to a sibling that serves
// (without this, half of them), and it still wins when strictly less busy.
func TestBusyTieGoesToProgress(t *testing.T) {
	for seed := range uint64(20) {
		p := NewPool("web", Options{LocalZone: "a"}, WithRand(seeded(seed)), WithShards(1))
		p.Update([]Spec{spec(1, 1, 1), spec(1, 2, 1)})
		stuck := hold(t, p, 1)[0] // on the backend that hangs from now on
		hung := stuck.Backend()
		// The sibling, idle, takes the next requests; one of them ends.
		done := hold(t, p, 1)[0]
		done.Release()
		serving := hold(t, p, 1)[0]
		if serving.Backend() == hung || done.Backend() == hung {
			t.Fatal("a pick went to the busier backend")
		}
		for i := range 50 {
			// Both hold one request; only the sibling ends any.
			l := hold(t, p, 1)[0]
			if l.Backend() == hung {
				t.Fatalf("seed %d, pick %d: an equally busy hung backend won a tie against one that serves", seed, i)
			}
			l.Release()
		}
		serving.Release()
		if l := hold(t, p, 1)[0]; l.Backend() == hung {
			t.Fatalf("seed %d: the idle sibling lost to the busy hung backend", seed)
		} else {
			l.Release()
		}
		stuck.Release()
	}
}
