package proxy

import "sync/atomic"

// Budget bounds a pool's retries so a dying fleet is not hit by a retry
// storm: concurrent retries may not exceed a share of the requests in flight,
// with a floor so a quiet pool can still retry (Envoy's retry budget). It
// outlives config generations so its counts stay true across reloads.
type Budget struct {
	active  atomic.Int64 // requests in flight on the pool
	retries atomic.Int64 // retry attempts in flight on the pool
}

// begin counts a request in flight; end must follow.
func (b *Budget) begin() { b.active.Add(1) }
func (b *Budget) end()   { b.active.Add(-1) }

// acquire takes a retry slot if the budget allows; release gives it back.
// A request keeps its slot through all its retries.
func (b *Budget) acquire(p *RetryPolicy) bool {
	for {
		n := b.retries.Load()
		limit := max(int64(p.BudgetPercent/100*float64(b.active.Load())), int64(p.BudgetMin))
		if n >= limit {
			return false
		}
		if b.retries.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

func (b *Budget) release() { b.retries.Add(-1) }
