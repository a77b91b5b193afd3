package balancer

import (
	"context"
	"errors"
)

// Reasons Pick finds no backend.
var (
	// ErrNoBackend: the pool has no backend that may take a request (none
	// configured, all down outside panic, all drained, or all tried).
	ErrNoBackend = errors.New("no available backend")
	// ErrNoCapacity: backends are available but all at their max_conns, and
	// the queue is off, full, or timed out.
	ErrNoCapacity = errors.New("no backend capacity")
)

// maxZones is the number of zones a pick tells apart; a pool with more zones
// lumps the rest into the last one.
const maxZones = 16

// zoneScan is what one pass over a pool's set learns about a zone.
type zoneScan struct {
	total, healthy int
	capacity       float64 // summed weights of healthy backends
	tried          bool    // a backend of this zone was tried by the request
	best           *Backend
	bestScore      float64
	ties           int
}

// offer considers b with score s for the zone's best candidate; ties are
// broken uniformly at random (reservoir sampling).
func (z *zoneScan) offer(b *Backend, s float64, r Rand) {
	switch {
	case z.best == nil || s < z.bestScore:
		z.best, z.bestScore, z.ties = b, s, 1
	case s == z.bestScore:
		z.ties++
		if r.IntN(z.ties) == 0 {
			z.best = b
		}
	}
}

// lazyNow reads the clock at most once per pick, and only if some backend is
// in slow start.
type lazyNow struct {
	p  *Pool
	v  int64
	ok bool
}

func (c *lazyNow) get() int64 {
	if !c.ok {
		c.v, c.ok = c.p.now(), true
	}
	return c.v
}

// Pick chooses a backend for one attempt and counts the request on it; the
// caller must call Release on the backend when the attempt ends. tried holds
// the backends this request already tried (nil for none). When every
// candidate is at its max_conns and the pool has a queue, Pick waits in FIFO
// order up to the queue timeout or until ctx ends.
func (p *Pool) Pick(ctx context.Context, tried *Tried) (*Backend, error) {
	o := p.opts()
	queued := o.QueueSize > 0 && o.QueueTimeout > 0
	if !queued || p.q.waiting.Load() == 0 {
		b, err := p.pick(tried)
		if err != ErrNoCapacity || !queued {
			return b, err
		}
	}
	return p.q.wait(ctx, p, tried, o)
}

// pick is the lock-free selection: one pass over the set gathers per-zone
// health and each zone's least-loaded candidate, then the zone is chosen.
func (p *Pool) pick(tried *Tried) (*Backend, error) {
	for range 4 { // a lost max_conns race rescans; bounded
		b, err := p.choose(tried)
		if b == nil {
			return nil, err
		}
		if b.tryAcquire() {
			return b, nil
		}
	}
	return nil, ErrNoCapacity
}

func (p *Pool) choose(tried *Tried) (*Backend, error) {
	s := p.current.Load()
	if len(s.backends) == 0 {
		return nil, ErrNoBackend
	}
	o := p.opts()
	clock := lazyNow{p: p}
	var zs [maxZones]zoneScan
	var anyZone zoneScan // panic mode: every backend not drained or removed
	totalAll, healthyAll := 0, 0
	full := false // some candidate was skipped only for lack of capacity
	retry := tried.Len() > 0

	for i, b := range s.backends {
		z := &zs[s.zoneOf[i]]
		z.total++
		totalAll++
		w := b.word.Load()
		healthy := w == uint32(StateUp)
		if healthy {
			z.healthy++
			healthyAll++
		}
		if retry && tried.Has(b) {
			z.tried = true
			continue
		}
		if w&(flagDrained|flagZoneOff|flagRemoved) != 0 {
			continue
		}
		spec := b.spec.Load()
		ew := b.effectiveWeight(spec, o.SlowStart, clock.get)
		if healthy {
			z.capacity += ew
		}
		n := b.inFlight.Load()
		if spec.MaxConns > 0 && n >= int64(spec.MaxConns) {
			full = true
			continue
		}
		score := float64(n+1) / ew
		anyZone.offer(b, score, p.rnd)
		if healthy {
			z.offer(b, score, p.rnd)
		}
	}
	nz := min(len(s.zones), maxZones)
	zones := zs[:nz]

	if o.PanicBelow > 0 && float64(healthyAll) < o.PanicBelow*float64(totalAll) {
		return none(anyZone.best, full)
	}
	local := -1
	for i, name := range s.zones[:nz] {
		if name == o.LocalZone && o.LocalZone != "" {
			local = i
		}
	}
	if retry {
		// A zone not tried yet first, weighted by healthy capacity; then
		// the least-loaded untried backend anywhere.
		if b := p.byCapacity(zones, -1, true); b != nil {
			return b, nil
		}
		return none(bestOf(zones, p.rnd), full)
	}
	if local < 0 {
		return none(bestOf(zones, p.rnd), full)
	}
	lz := &zones[local]
	if lz.best != nil {
		share := localShare(lz, o.SpillBelow)
		if share >= 1 || p.rnd.Float64() < share {
			return lz.best, nil
		}
	}
	if b := p.byCapacity(zones, local, false); b != nil {
		return b, nil
	}
	return none(lz.best, full)
}

// localShare is the share of traffic the local zone keeps: 1 while its
// healthy share is at or above spillBelow, then falling in proportion.
func localShare(z *zoneScan, spillBelow float64) float64 {
	if spillBelow <= 0 || z.total == 0 {
		return 1
	}
	h := float64(z.healthy) / float64(z.total)
	if h >= spillBelow {
		return 1
	}
	return h / spillBelow
}

// byCapacity picks a zone other than skip, with a candidate, at random in
// proportion to its healthy capacity, and returns that zone's candidate.
// With untriedOnly, zones a request already tried are left out.
func (p *Pool) byCapacity(zones []zoneScan, skip int, untriedOnly bool) *Backend {
	var sum float64
	for i := range zones {
		if z := &zones[i]; i != skip && z.best != nil && !(untriedOnly && z.tried) {
			sum += z.capacity
		}
	}
	if sum <= 0 {
		return nil
	}
	r := p.rnd.Float64() * sum
	var last *Backend
	for i := range zones {
		z := &zones[i]
		if i == skip || z.best == nil || (untriedOnly && z.tried) {
			continue
		}
		last = z.best
		if r < z.capacity {
			return z.best
		}
		r -= z.capacity
	}
	return last // rounding
}

// bestOf returns the least-loaded candidate over all zones, a tie broken
// uniformly over every tied backend.
func bestOf(zones []zoneScan, r Rand) *Backend {
	var best *Backend
	var score float64
	ties := 0
	for i := range zones {
		z := &zones[i]
		switch {
		case z.best == nil:
		case best == nil || z.bestScore < score:
			best, score, ties = z.best, z.bestScore, z.ties
		case z.bestScore == score:
			ties += z.ties
			if r.IntN(ties) < z.ties {
				best = z.best
			}
		}
	}
	return best
}

func none(b *Backend, full bool) (*Backend, error) {
	switch {
	case b != nil:
		return b, nil
	case full:
		return nil, ErrNoCapacity
	}
	return nil, ErrNoBackend
}
