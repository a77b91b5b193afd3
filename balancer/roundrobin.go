package balancer

import "sync/atomic"

// rrCounter is one entry's current weight for smooth round robin. They
// are packed, not padded to a cache line each: every round-robin pick
// writes every candidate's, so padding would only spread the same writes
// over more lines.
type rrCounter struct {
	cw atomic.Int64
}

// roundRobin is nginx's smooth weighted round robin over the available
// candidates of entries[lo:hi]: each candidate's current weight grows by
// its effective weight (slow start included), the largest wins and drops
// by the sum of the effective weights. Over any run of picks each
// candidate gets its weight's share, interleaved (weights 5,1,1 give
// a a b a c a a, not a a a a a b c).
//
// The current weights are atomics in the set, so concurrent picks need no
// lock; two picks that read the same largest weight both take it and it
// drops twice, so shares still hold and the order is smooth only
// approximately. A pick costs an atomic add per candidate: O(zone size),
// unlike least-conn's two choices on large zones. A new set (reload,
// Consul update) starts the rotation over.
func (c *pickCtx) roundRobin(lo, hi int, anyState bool) *entry {
	best := -1
	var bestCW, total int64
	for i := lo; i < hi; i++ {
		e := &c.s.entries[i]
		if _, ok := c.candidate(e, anyState); !ok {
			continue
		}
		w := e.b.rampWeight(e.weight, c.slow, &c.clock)
		cw := c.s.rr[i].cw.Add(w)
		total += w
		if best < 0 || cw > bestCW {
			best, bestCW = i, cw
		}
	}
	if best < 0 {
		return nil
	}
	c.s.rr[best].cw.Add(-total)
	return &c.s.entries[best]
}
