package proxy

import (
	"sync"
	"sync/atomic"
	"time"
)

// Budget bounds a pool's retries and hedges over time, in the shape of
// Finagle's RetryBudget: each request deposits BudgetPercent/100 of a
// retry, each retry or hedge withdraws one, both expire after BudgetWindow,
// and BudgetMinPerSecond retries per second are always allowed (a reserve
// of that many times the window's seconds). When every zone fails, retries
// stay a bounded share of the traffic; when one zone fails, the deposits
// of the requests before it pay for the burst of redispatches it causes.
// A share of requests in flight would refuse exactly that burst: at that
// moment nearly every request in flight is on the failing zone.
//
// It outlives config generations, so its history is kept across reloads;
// a changed window starts the count over. A deposit costs one atomic add
// and takes no lock; withdrawals, which happen only on retries, take one,
// so a storm of them never overdraws.
type Budget struct {
	slots [budgetSlots]budgetSlot
	mu    sync.Mutex    // serialises withdrawals
	last  time.Duration // the latest withdrawal's time; guarded by mu
}

// budgetSlots is how many slices of the window are counted apart; an
// expired slice is forgotten whole, so the window slides in steps of a
// tenth of its length.
const budgetSlots = 10

// budgetUnit is one retry in the budget's fixed-point units: a request
// deposits BudgetPercent units.
const budgetUnit = 100

type budgetSlot struct {
	epoch atomic.Int64 // which slice of time the slot counts; starts at 0, so slices count from 1
	units atomic.Int64 // deposits minus withdrawals in the slice
	_     [48]byte     // slots written by different cores stay on their own cache lines
}

// deposit adds one request's share at at (time since processStart).
func (b *Budget) deposit(at time.Duration, p *RetryPolicy) {
	if p.BudgetPercent <= 0 {
		return
	}
	b.add(at, p, int64(p.BudgetPercent))
}

// withdraw takes one retry if the window's balance, with the reserve, has
// one, and reports whether it did.
func (b *Budget) withdraw(at time.Duration, p *RetryPolicy) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	// Withdrawals count in the order they take the lock: one whose time
	// was read before another's but locks after it counts at the other's
	// time, so it sees that withdrawal's slot.
	at = max(at, b.last)
	b.last = at
	if b.balance(at, p) < budgetUnit {
		return false
	}
	b.add(at, p, -budgetUnit)
	return true
}

// balance is the window's deposits minus withdrawals plus the reserve, in
// units.
func (b *Budget) balance(at time.Duration, p *RetryPolicy) int64 {
	slice, ok := budgetSlice(p)
	if !ok {
		return 0
	}
	now := int64(at/slice) + 1
	sum := int64(p.BudgetMinPerSecond) * int64(p.BudgetWindow/time.Second) * budgetUnit
	for i := range b.slots {
		s := &b.slots[i]
		if e := s.epoch.Load(); e > now-budgetSlots && e <= now {
			sum += s.units.Load()
		}
	}
	return sum
}

func (b *Budget) add(at time.Duration, p *RetryPolicy, units int64) {
	slice, ok := budgetSlice(p)
	if !ok {
		return
	}
	e := int64(at/slice) + 1
	s := &b.slots[e%budgetSlots]
	if old := s.epoch.Load(); old != e {
		// The first to reach a new slice clears what the slot counted a
		// window ago; a deposit racing with the clear may be lost.
		if old < e && s.epoch.CompareAndSwap(old, e) {
			s.units.Store(0)
		} else if s.epoch.Load() != e {
			return // a slice already past: nothing to count it in
		}
	}
	s.units.Add(units)
}

// budgetSlice is the length of one slot's slice of the window.
func budgetSlice(p *RetryPolicy) (time.Duration, bool) {
	slice := p.BudgetWindow / budgetSlots
	return slice, slice > 0
}

// processStart is the origin of the times the budget and the per-try
// learner count in: monotonic, so a clock step changes nothing.
var processStart = time.Now()
