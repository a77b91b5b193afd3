package proxy

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// The adaptive per-try timeout (timeouts.per_try: auto) is learned per pool
// from the time to response headers of successful attempts: perTryFactor
// times their p99 over the last perTryWindow, clamped to [perTryFloor,
// perTryCeiling], and perTryStart until perTryMinSamples are in. Since an
// expired per-try timer hedges rather than aborts, the value can be tight:
// a request slower than it still succeeds, at the cost of a second attempt
// in another zone (paid from the retry budget); a zone that hangs costs a
// request about the per-try value instead of the whole request timeout.
//
// It rises fast and falls slowly. The window's p99 counts samples, so
// after the whole pool slows down (every zone slow), the many fast
// samples from before would hold it low for seconds while every request
// hedged in vain. So the p90 of each half-second slice with at least
// perTrySliceSamples samples counts too: one slice where most requests
// are slow raises the value at once, and it stays up for the window. A
// hung or slow zone does not raise it: its attempts lose to their hedges
// and only winners are samples.
const (
	perTryFactor       = 3
	perTryFloor        = 20 * time.Millisecond
	perTryCeiling      = 5 * time.Second
	perTryStart        = time.Second
	perTryMinSamples   = 50
	perTrySliceSamples = 20
	perTryWindow       = 10 * time.Second
	perTrySlots        = 20 // the window slides in steps of perTryWindow/perTrySlots
)

// Latency buckets: microseconds, exact below 8, then four buckets per
// power of two (a bucket is at most 25% wide), up to 2^27 µs (134 s).
const (
	latExact   = 8
	latOctaves = 24 // bit lengths 4 to 27
	latBuckets = latExact + 4*latOctaves
)

// perTryLearner learns one pool's per-try timeout. It outlives config
// generations (like the retry budget), so a reload keeps what it learned.
// Recording a sample costs two atomic adds; the value is computed again
// once per slot, by whichever request first reaches a new one.
type perTryLearner struct {
	slots [perTrySlots]latencySlot
	value atomic.Int64 // the learned per-try timeout in ns; 0 until learned
	last  atomic.Int64 // the newest slot epoch the value was computed at
	// hedge learns the hedge delay, for a pool with hedge delay auto;
	// made by the first sample that needs it.
	hedge atomic.Pointer[hedgeLearner]
}

type latencySlot struct {
	epoch   atomic.Int64 // the slice of time counted; epochs start at 1
	count   atomic.Int64
	buckets [latBuckets]atomic.Int64
}

// current returns the per-try timeout to use now.
func (l *perTryLearner) current() time.Duration {
	if v := l.value.Load(); v > 0 {
		return time.Duration(v)
	}
	return perTryStart
}

// observe records a successful attempt's time to headers d at at (time
// since processStart).
func (l *perTryLearner) observe(at, d time.Duration) {
	e := epochAt(at)
	if last := l.last.Load(); e > last && l.last.CompareAndSwap(last, e) {
		// The first sample of a new slice recomputes from the window
		// before it, whose slices are complete.
		l.learn(e)
	}
	record(&l.slots, e, d)
}

// epochAt is the slice of time a sample taken at at (since processStart)
// falls in; epochs start at 1.
func epochAt(at time.Duration) int64 {
	return int64(at/(perTryWindow/perTrySlots)) + 1
}

// record counts d in the slot of epoch e, which starts over when it held
// an older epoch; a sample from a slice already past is dropped.
func record(slots *[perTrySlots]latencySlot, e int64, d time.Duration) {
	s := &slots[e%perTrySlots]
	if old := s.epoch.Load(); old != e {
		if old > e {
			return
		}
		if s.epoch.CompareAndSwap(old, e) {
			s.count.Store(0)
			for i := range s.buckets {
				s.buckets[i].Store(0)
			}
		}
	}
	s.buckets[latBucket(d)].Add(1)
	s.count.Add(1)
}

// learn computes the value from the slots of the window ending before
// epoch now: the larger of the window's p99 and the p90 of its busiest
// slow slice (see the constants). With too few samples it keeps the value
// it had.
func (l *perTryLearner) learn(now int64) {
	var counts [latBuckets]int64
	var total int64
	var high time.Duration // the highest p90 of a slice with enough samples
	for i := range l.slots {
		s := &l.slots[i]
		if e := s.epoch.Load(); e < now-perTrySlots || e >= now {
			continue
		}
		var slot [latBuckets]int64
		var n int64
		for j := range slot {
			slot[j] = s.buckets[j].Load()
			n += slot[j]
			counts[j] += slot[j]
		}
		total += n
		if n >= perTrySliceSamples {
			high = max(high, quantile(&slot, n, 90))
		}
	}
	if total < perTryMinSamples {
		return
	}
	p := max(quantile(&counts, total, 99), high)
	l.value.Store(int64(clampPerTry(perTryFactor * p)))
}

// quantile returns the upper bound of the bucket holding the q-th
// percentile of n samples counted in counts.
func quantile(counts *[latBuckets]int64, n int64, q int64) time.Duration {
	rank := (n*q + 99) / 100 // counted from 1
	var seen int64
	for j, c := range counts {
		if seen += c; seen >= rank {
			return latUpper(j)
		}
	}
	return latUpper(latBuckets - 1)
}

func clampPerTry(d time.Duration) time.Duration {
	return min(max(d, perTryFloor), perTryCeiling)
}

// latBucket returns d's bucket.
func latBucket(d time.Duration) int {
	us := uint64(max(d/time.Microsecond, 0))
	if us < latExact {
		return int(us)
	}
	n := bits.Len64(us) // 4 or more
	if n > 3+latOctaves {
		return latBuckets - 1
	}
	sub := int(us>>(n-3)) & 3 // the two bits after the leading one
	return latExact + (n-4)*4 + sub
}

// latUpper returns the upper bound of bucket j.
func latUpper(j int) time.Duration {
	if j < latExact {
		return time.Duration(j+1) * time.Microsecond
	}
	k := j - latExact
	n, sub := k/4+4, k%4
	return time.Duration(uint64(4+sub+1)<<(n-3)) * time.Microsecond
}
