package balancer

// random draws one candidate of entries[lo:hi] in proportion to its
// effective weight (slow start included).
func (c *pickCtx) random(lo, hi int, anyState bool) *entry {
	e, _ := c.weightedDraw(lo, hi, anyState, nil)
	return e
}

// p2c draws two distinct candidates in proportion to their weights
// and returns the one with fewer requests in flight (penalty included);
// on a tie, the first drawn, so an idle pool splits traffic by weight.
// With one candidate, that one.
func (c *pickCtx) p2c(lo, hi int, anyState bool) *entry {
	first, firstLoad := c.weightedDraw(lo, hi, anyState, nil)
	if first == nil {
		return nil
	}
	second, secondLoad := c.weightedDraw(lo, hi, anyState, first)
	if second != nil && secondLoad < firstLoad {
		return second
	}
	return first
}

// weightedDraw returns a candidate of entries[lo:hi] other than not, drawn
// with probability proportional to its effective weight, and its load.
// It first tries rejection sampling, which costs a draw or two when
// weights are even, whatever the range's size: an entry drawn uniformly
// is kept with probability weight/maxWeight. After p2cDraws misses (a
// range mostly down, full or of uneven weights) one exact pass over the
// range draws by weighted reservoir sampling. Each stage alone is exactly
// proportional to weight, so their sequence is too.
func (c *pickCtx) weightedDraw(lo, hi int, anyState bool, not *entry) (*entry, int64) {
	n := hi - lo
	if n <= 0 {
		return nil, 0
	}
	maxW := c.s.maxWeight
	for range p2cDraws {
		e := &c.s.entries[lo+c.rng.intN(n)]
		if e == not {
			continue
		}
		load, ok := c.candidate(e, anyState)
		if !ok {
			continue
		}
		if w := e.b.rampWeight(e.weight, c.slow, &c.clock); w < maxW && c.rng.int64N(maxW) >= w {
			continue
		}
		return e, load
	}
	var pick *entry
	var pickLoad, total int64
	for i := lo; i < hi; i++ {
		e := &c.s.entries[i]
		if e == not {
			continue
		}
		load, ok := c.candidate(e, anyState)
		if !ok {
			continue
		}
		w := e.b.rampWeight(e.weight, c.slow, &c.clock)
		total += w
		if c.rng.int64N(total) < w {
			pick, pickLoad = e, load
		}
	}
	return pick, pickLoad
}
