package balancer

import "time"

// A failed attempt makes its backend look busier to least-connections for a
// short while: a soft, decaying penalty added to the backend's in-flight
// count when picks compare loads. It reacts faster than ejection, which needs
// several failures in a row, each costing a client a per-try timeout. Once a
// backend's first request times out, the penalty keeps new requests away
// from it while its siblings have fewer requests in flight than the penalty,
// so it stops taking first attempts long before it has failed often enough
// to be ejected. It is soft: when every sibling is busier than the penalty,
// the backend takes traffic again, so one failure never halves a small
// zone's capacity the way ejecting its backend would.
//
// The penalty is 2^n connections for n failed attempts in a row (capped at
// maxPenalty), halves every Options.PenaltyHalfLife, and ends at once on a
// successful attempt or when the backend comes back up.

// maxPenalty caps the penalty, in connections. It fits the word's low 16 bits.
const maxPenalty = 1 << 10

// penaltyBits holds the amount in Backend.penalty's low bits; the bits above
// hold when it was set, in milliseconds of the pool clock.
const penaltyBits = 16

// Penalize sets the backend's penalty for failures failed attempts in a row
// (counted by the caller, passive outlier detection): 2^failures
// connections, up to 1,024, starting now. A pool whose PenaltyHalfLife is 0
// has no penalties and ignores it.
func (b *Backend) Penalize(failures int) {
	if failures <= 0 || b.pool.opts().PenaltyHalfLife <= 0 {
		return
	}
	amount := uint64(maxPenalty)
	if failures < 10 {
		amount = 1 << failures
	}
	ms := max(b.pool.now()/int64(time.Millisecond), 1)
	b.penalty.Store(uint64(ms)<<penaltyBits | amount)
}

// Overtaken gives the backend the penalty of one failure (2 connections)
// unless a larger one is in force: an attempt on it was overtaken by a
// hedge that answered from another zone first. That is no failure (it
// counts neither toward ejection nor against health), but it is a sign
// the backend is slower than others now. The attempt is cancelled when
// its hedge wins, so its in-flight count no longer shows that slowness:
// without the penalty least-connections would send such a backend more
// requests the more of them hedging cut short.
func (b *Backend) Overtaken() {
	if b.Penalty() < 2 {
		b.Penalize(1)
	}
}

// Forgive ends the backend's penalty: an attempt on it succeeded. It costs
// one atomic load when there is none.
func (b *Backend) Forgive() {
	if b.penalty.Load() != 0 {
		b.penalty.Store(0)
	}
}

// Penalty returns the backend's penalty now, in connections (for the admin
// status).
func (b *Backend) Penalty() int64 {
	c := clock{p: b.pool}
	return b.penaltyAt(b.pool.opts().PenaltyHalfLife, &c)
}

// penaltyAt returns the penalty decayed to the clock's now: halved for every
// whole half-life since it was set, and in between falling linearly toward
// the next half, so it shrinks smoothly. A penalty that decayed to nothing
// is cleared, so later picks skip the clock.
func (b *Backend) penaltyAt(half time.Duration, c *clock) int64 {
	w := b.penalty.Load()
	if w == 0 {
		return 0
	}
	if half <= 0 {
		return 0 // penalties were turned off by a reload
	}
	amount := int64(w & (1<<penaltyBits - 1))
	elapsed := max(c.now()-int64(w>>penaltyBits)*int64(time.Millisecond), 0)
	k := elapsed / int64(half)
	if k >= penaltyBits {
		b.penalty.CompareAndSwap(w, 0)
		return 0
	}
	cur := amount >> k
	cur -= (cur >> 1) * (elapsed % int64(half)) / int64(half)
	if cur == 0 {
		b.penalty.CompareAndSwap(w, 0)
	}
	return cur
}
