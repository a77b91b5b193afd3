package balancer

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// lockedRand is a seeded, concurrency-safe Rand for deterministic tests.
type lockedRand struct {
	mu sync.Mutex
	r  *rand.Rand
}

func seeded(seed uint64) *lockedRand {
	return &lockedRand{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

func (l *lockedRand) IntN(n int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.IntN(n)
}

func (l *lockedRand) Float64() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.Float64()
}

// fakeClock is a manual clock for slow-start tests.
type fakeClock struct{ ns atomic.Int64 }

func newClock(start time.Time) *fakeClock {
	c := &fakeClock{}
	c.ns.Store(start.UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }
func (c *fakeClock) option() PoolOption      { return WithClock(c.Now) }
func (c *fakeClock) set(t time.Time)         { c.ns.Store(t.UnixNano()) }
func addr(zone, host int) string             { return fmt.Sprintf("127.0.%d.%d:8080", zone, host) }
func zoneName(zone int) string               { return string(rune('a' + zone - 1)) }
func spec(zone, host, weight int) Spec {
	return Spec{Address: addr(zone, host), Zone: zoneName(zone), Weight: weight}
}
func (s Spec) withMax(n int) Spec { s.MaxConns = n; return s }

// testPool is a pool with seeded randomness.
func testPool(o Options, opts ...PoolOption) *Pool {
	return NewPool("web", o, append([]PoolOption{WithRand(seeded(1))}, opts...)...)
}

// spread returns n backends of weight 1 over zones 1..zones (zone names
// "a", "b", ...), host numbers counting up within each zone; loopback
// addresses 127.0.<zone>.<host> stand for the zones.
func spread(n, zones int) []Spec {
	out := make([]Spec, 0, n)
	for i := range n {
		z := i%zones + 1
		out = append(out, spec(z, i/zones+1, 1))
	}
	return out
}

// hold picks n times without releasing, failing the test on an error.
func hold(t testing.TB, p *Pool, n int) []Lease {
	t.Helper()
	out := make([]Lease, 0, n)
	for range n {
		l, err := p.Pick(t.Context(), nil)
		if err != nil {
			t.Fatalf("pick %d of %d: %v", len(out)+1, n, err)
		}
		out = append(out, l)
	}
	return out
}

// holdOn counts n requests on b directly, to set up a load.
func holdOn(b *Backend, n int) { b.inFlight.Add(int64(n)) }

func releaseAll(ls []Lease) {
	for _, l := range ls {
		l.Release()
	}
}

// countPicks picks and releases n times and counts the picks per address
// and per zone.
func countPicks(t testing.TB, p *Pool, n int, tried *Tried) (byAddr, byZone map[string]int) {
	t.Helper()
	byAddr, byZone = map[string]int{}, map[string]int{}
	for range n {
		l, err := p.Pick(t.Context(), tried)
		if err != nil {
			t.Fatalf("pick: %v", err)
		}
		byAddr[l.Backend().Address()]++
		byZone[l.Backend().Zone()]++
		l.Release()
	}
	return byAddr, byZone
}

// checkTally compares the pool's live tally with a recount of its set.
func checkTally(t testing.TB, p *Pool) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.current.Load()
	var all int64
	for zi, z := range s.zones {
		var n, w int64
		for _, e := range s.entries[z.lo:z.hi] {
			if e.b.Available() {
				n++
				w += e.weight
			}
		}
		all += n
		if got := s.tally.zones[zi].healthy.Load(); got != n {
			t.Errorf("zone %q: tally says %d healthy, recount %d", z.name, got, n)
		}
		if got := s.tally.zones[zi].weight.Load(); got != w {
			t.Errorf("zone %q: tally says weight %d, recount %d", z.name, got, w)
		}
	}
	if got := s.tally.healthy.Load(); got != all {
		t.Errorf("pool: tally says %d healthy, recount %d", got, all)
	}
}
