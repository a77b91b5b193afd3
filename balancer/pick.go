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

// Pick chooses a backend for one attempt and counts the request on it; the
// caller must Release the Lease when the attempt ends. tried holds the
// backends this request already tried (nil for none). When every candidate
// is at its max_conns and the pool has a queue, Pick waits in FIFO order up
// to the queue timeout or until ctx ends.
//
// The path without queueing takes no lock and allocates nothing; it writes
// the chosen backend's exact in-flight count, which every pick compares.
func (p *Pool) Pick(ctx context.Context, tried *Tried) (Lease, error) {
	return p.PickKeyed(ctx, tried, nil)
}

// PickKeyed is Pick for a request that brings a Key: its hash for the
// hash policy, and the backend it is pinned to (sticky sessions). A nil
// key is Pick.
func (p *Pool) PickKeyed(ctx context.Context, tried *Tried, key *Key) (Lease, error) {
	o := p.opts()
	queued := o.QueueSize > 0 && o.QueueTimeout > 0
	if !queued || p.q.waiting.Load() == 0 {
		rng := prng{src: p.rnd}
		l, err := p.pick(tried, key, &rng)
		if !queued || err != ErrNoCapacity {
			return l, err
		}
	}
	return p.q.wait(ctx, p, tried, key, o)
}

// pickTries bounds how often pick chooses again after a lost max_conns race
// or a backend removed under it. Each retry needs another request to win
// the race or another Update to land in the few nanoseconds between the
// choice and the acquisition, so the bound is never reached in practice;
// it only keeps the loop finite.
const pickTries = 16

// pick chooses and acquires a backend; a lost max_conns race, or a backend
// removed by an Update between the choice and the acquisition, chooses
// again, at most pickTries times.
func (p *Pool) pick(tried *Tried, key *Key, rng *prng) (Lease, error) {
	for range pickTries {
		s := p.current.Load()
		e, err := p.choose(s, tried, key, rng)
		if e == nil {
			if err == ErrNoBackend && p.current.Load() != s {
				continue // the set was swapped while we chose: choose again
			}
			return Lease{}, err
		}
		if !e.b.tryAcquire(e.maxConns) {
			continue
		}
		// Update sets flagRemoved before it reads the in-flight count, and
		// the acquisition above came before this load: either Update saw
		// the request and retires the backend after it, or this sees the
		// flag and gives the slot back. No request starts on a backend
		// that was already retired.
		if e.b.word.Load()&flagRemoved != 0 {
			e.b.undo()
			continue
		}
		return Lease{b: e.b}, nil
	}
	return Lease{}, ErrNoCapacity
}

// choose applies the pool's rules in order: a sticky pin (first attempts
// only), retry (zones not tried first), panic, zone preference with
// spill; the pool's policy chooses inside the range they settle on. Zone
// health comes from the set's tally, so only the entries of the zone
// chosen are read.
func (p *Pool) choose(s *set, tried *Tried, key *Key, rng *prng) (*entry, error) {
	all := len(s.entries)
	if all == 0 {
		return nil, ErrNoBackend
	}
	o := p.opts()
	c := pickCtx{s: s, slow: o.SlowStart, half: o.PenaltyHalfLife, tried: tried, retry: tried.Len() > 0, rng: rng, clock: clock{p: p}, p2cAbove: p.p2cAbove, policy: o.Policy, key: key}
	if key != nil && key.Pin != 0 && !c.retry {
		if e := c.pinned(key.Pin); e != nil {
			return e, nil
		}
	}

	// Health checks may be lying: in panic, balance over every backend an
	// operator has not drained, whatever its health.
	panicking := s.panicking(o)
	if c.retry {
		// A zone not tried yet first, in proportion to its capacity; then
		// the least-loaded untried backend anywhere.
		if e := c.spread(c.triedZones(), panicking); e != nil {
			return e, nil
		}
		return c.none(c.within(0, all, panicking))
	}
	if panicking {
		return c.none(c.within(0, all, true))
	}
	local := -1
	if o.LocalZone != "" {
		local = s.zoneIndex(o.LocalZone)
	}
	if local < 0 {
		return c.none(c.within(0, all, false))
	}
	z := &s.zones[local]
	share := localShare(s.tally.zones[local].healthy.Load(), z.hi-z.lo, o.SpillBelow)
	if share >= 1 || rng.float64() < share {
		if e := c.within(z.lo, z.hi, false); e != nil {
			return e, nil
		}
		// Every healthy local backend is at max_conns (or none is
		// healthy): spill.
	}
	if e := c.spread(1<<local, false); e != nil {
		return e, nil
	}
	// The draw sent the request away but no other zone can take it.
	return c.none(c.within(z.lo, z.hi, false))
}

// Panicking reports whether picks now ignore health because too few
// backends are healthy (Options.PanicBelow): then a backend that is not
// available may still be picked. Two atomic loads.
func (p *Pool) Panicking() bool { return p.current.Load().panicking(p.opts()) }

// panicking reports whether the set's healthy share is below PanicBelow.
func (s *set) panicking(o *Options) bool {
	return o.PanicBelow > 0 && float64(s.tally.healthy.Load()) < o.PanicBelow*float64(len(s.entries))
}

// localShare is the share of new requests the local zone keeps: 1 while its
// healthy share is at or above spillBelow, then h/spillBelow. The rest
// spreads to the other zones; this is Envoy's zone-aware routing with an
// overprovisioning factor of 1/spillBelow.
func localShare(healthy int64, total int, spillBelow float64) float64 {
	if spillBelow <= 0 || total == 0 {
		return 1
	}
	h := float64(healthy) / float64(total)
	if h >= spillBelow {
		return 1
	}
	return h / spillBelow
}

// spread picks a zone not in exclude at random in proportion to its healthy
// capacity (summed configured weights of its available backends, read from
// the tally; slow-start ramps shape traffic inside a zone, not between
// zones) and returns that zone's least-loaded candidate; a zone without one
// is left out and the draw repeats over the others. In panic (anyState),
// health is not trusted and a zone's capacity is its number of backends.
func (c *pickCtx) spread(exclude uint64, anyState bool) *entry {
	zs, t := c.s.zones, c.s.tally.zones
	capacity := func(i int) int64 {
		if anyState {
			return int64(zs[i].hi - zs[i].lo)
		}
		return t[i].weight.Load()
	}
	for {
		var sum int64
		for i := range zs {
			if exclude&(1<<i) == 0 {
				sum += capacity(i)
			}
		}
		if sum <= 0 {
			return nil
		}
		r := c.rng.int64N(sum)
		chosen := -1
		for i := range zs {
			w := capacity(i)
			if exclude&(1<<i) != 0 || w <= 0 {
				continue
			}
			chosen = i // the last eligible zone absorbs a tally that moved
			if r < w {
				break
			}
			r -= w
		}
		if chosen < 0 {
			return nil
		}
		if e := c.within(zs[chosen].lo, zs[chosen].hi, anyState); e != nil {
			return e
		}
		exclude |= 1 << chosen
	}
}

// triedZones returns the mask of the set's zones this request tried.
func (c *pickCtx) triedZones() uint64 {
	var m uint64
	for _, b := range c.tried.list[:c.tried.n] {
		if i := c.s.zoneIndex(b.Zone()); i >= 0 {
			m |= 1 << i
		}
	}
	return m
}

// none turns "no candidate" into its reason.
func (c *pickCtx) none(e *entry) (*entry, error) {
	switch {
	case e != nil:
		return e, nil
	case c.full:
		return nil, ErrNoCapacity
	}
	return nil, ErrNoBackend
}

// Healthy is how many of the pool's backends can take a request now (up
// or pending their first checks, not drained, not ejected). One atomic
// load: the request path asks it to decide on a backup pool.
func (p *Pool) Healthy() int64 { return p.current.Load().tally.healthy.Load() }
