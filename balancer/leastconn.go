package balancer

import "time"

// p2cAbove is the default number of backends in a range above which
// leastConn samples two candidates at random (the power of two choices)
// instead of scanning them all. An exact scan reads every backend's atomics,
// so its cost grows with the range; two choices cost the same at any size
// and keep the load within a small constant of the exact minimum
// (TestLeastConnKeepsInFlightEven). BenchmarkPickExact against
// BenchmarkPick at 1,000 backends (333 per zone) shows why: about 1.1 to
// 2.2 µs per pick for the scan, about 60 ns for two choices, on a busy
// 2-core machine. At 100 backends (34 per zone) the scan costs about 110 ns
// and stays exact.
const p2cAbove = 64

// p2cDraws bounds the samples two-choices takes to find two candidates
// before it falls back to the exact scan (a zone mostly down or full).
const p2cDraws = 8

// pickCtx is one choice's view of the set: which backends it may consider
// and what it learned on the way. It lives on the stack.
type pickCtx struct {
	s        *set
	slow     time.Duration
	half     time.Duration // Options.PenaltyHalfLife
	tried    *Tried
	retry    bool // tried is not empty
	rng      *prng
	clock    clock
	p2cAbove int
	full     bool // a candidate was passed over only for its max_conns
	policy   Policy
	key      *Key // nil: the request brings none
}

// clock reads the pool clock at most once per pick, and only if some
// backend considered is in slow start or has a penalty.
type clock struct {
	p  *Pool
	v  int64
	ok bool
}

func (c *clock) now() int64 {
	if !c.ok {
		c.v, c.ok = c.p.now(), true
	}
	return c.v
}

// tieBuf is how many tied candidates a scan remembers by index; ties beyond
// it are sampled as they come; it matches p2cAbove, so an exact scan of a
// zone never overflows it. Drawing once at the end instead of once per
// tie keeps the common case, an idle pool where every backend ties, cheap.
const tieBuf = 64

// leastConn returns the candidate of entries[lo:hi] with the fewest
// in-flight requests (the exact count, plus penalty) per unit of effective
// weight, or nil. Among equally busy candidates, the one whose
// last request ended most recently wins: a backend that hangs keeps its
// requests and ends none, so it loses every such tie, and its stuck
// requests alone keep traffic away from it long before they time out.
// Idle candidates (and busy ones that ended requests at the same tick)
// tie uniformly at random. anyState admits backends whatever their health (panic);
// drained, removed and tried backends and those at max_conns never qualify.
func (c *pickCtx) leastConn(lo, hi int, anyState bool) *entry {
	if hi-lo > c.p2cAbove {
		if e := c.twoChoices(lo, hi, anyState); e != nil {
			return e
		}
	}
	entries := c.s.entries[lo:hi]
	var tie [tieBuf]int32 // indexes into entries of the ties so far
	ties := 0
	over := -1 // a tie beyond the buffer that won its reservoir draw
	best := -1
	var bestLoad, bestW int64
	var bestDone uint64
	for i := range entries {
		e := &entries[i]
		b := e.b
		if w := b.word.Load(); w != uint32(StateUp) && (!anyState || w&flagsOff != 0) {
			continue
		}
		load := b.inFlight.Load()
		if e.maxConns > 0 && load >= e.maxConns {
			c.full = true
			continue
		}
		if c.retry && c.tried.Has(b) {
			continue
		}
		if b.penalty.Load() != 0 {
			load += b.penaltyAt(c.half, &c.clock)
		}
		w := e.weight
		if b.rampFrom.Load() != 0 {
			w = b.rampWeight(w, c.slow, &c.clock)
		}
		if best >= 0 {
			// (load+1)/w against (bestLoad+1)/bestW, without dividing.
			l, r := (load+1)*bestW, (bestLoad+1)*w
			if l > r {
				continue
			}
			if l == r && load > 0 {
				// Equally busy: the one whose requests ended more
				// recently is making progress; one that hangs is not.
				if d := b.done.Load(); d > bestDone {
					best, bestLoad, bestW, bestDone = i, load, w, d
					tie[0], ties, over = int32(i), 1, -1
					continue
				} else if d < bestDone {
					continue
				}
			}
			if l == r {
				if ties < tieBuf {
					tie[ties] = int32(i)
				} else if c.rng.intN(ties+1) == 0 {
					over = i // reservoir sampling: the t-th tie wins with 1/t
				}
				ties++
				continue
			}
		}
		best, bestLoad, bestW, bestDone = i, load, w, b.done.Load()
		tie[0], ties, over = int32(i), 1, -1
	}
	switch {
	case best < 0:
		return nil
	case over >= 0:
		best = over
	case ties > 1:
		// Uniform over the buffered ties; with overflow, they together
		// hold exactly the probability the reservoir left them.
		best = int(tie[c.rng.intN(min(ties, tieBuf))])
	}
	return &entries[best]
}

// twoChoices samples candidates of entries[lo:hi] until it has two and
// returns the less loaded, or nil if p2cDraws samples found fewer than two.
func (c *pickCtx) twoChoices(lo, hi int, anyState bool) *entry {
	var first *entry
	var firstLoad, firstW int64
	n := hi - lo
	for range p2cDraws {
		e := &c.s.entries[lo+c.rng.intN(n)]
		if e == first {
			continue
		}
		load, ok := c.candidate(e, anyState)
		if !ok {
			continue
		}
		w := e.b.rampWeight(e.weight, c.slow, &c.clock)
		if first == nil {
			first, firstLoad, firstW = e, load, w
			continue
		}
		if (load+1)*firstW < (firstLoad+1)*w {
			return e
		}
		return first
	}
	return nil
}

// candidate reports whether e may take this request and its load: its
// exact in-flight count plus its penalty.
func (c *pickCtx) candidate(e *entry, anyState bool) (int64, bool) {
	w := e.b.word.Load()
	if anyState {
		if w&flagsOff != 0 {
			return 0, false
		}
	} else if w != uint32(StateUp) {
		return 0, false
	}
	if c.retry && c.tried.Has(e.b) {
		return 0, false
	}
	n := e.b.inFlight.Load()
	if e.maxConns > 0 && n >= e.maxConns {
		c.full = true
		return 0, false
	}
	if e.b.penalty.Load() != 0 {
		n += e.b.penaltyAt(c.half, &c.clock)
	}
	return n, true
}
