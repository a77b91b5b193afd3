package proxy

import (
	"sync/atomic"
	"time"
)

// Hedge is a pool's hedging by delay (configs.Hedge): an attempt of a
// replayable request that has no response head after the delay gets a
// hedge in a zone not tried yet, at most Max per request. The attempt's
// per-try timeout still decides what counts against its backend: an
// attempt overtaken by a hedge started by delay, but answered within its
// per-try time, was not at fault.
type Hedge struct {
	// Max is the hedges by delay one request may start; 0 turns hedging
	// by delay off.
	Max int
	// Auto learns the delay (see hedgeLearner).
	Auto bool
	// Delay is the delay when not Auto.
	Delay time.Duration
}

// The learned hedge delay is the p95 time to headers of successful
// attempts in the pool's fastest zone, over the per-try window (each zone
// with hedgeMinSamples at least), never below hedgeFloor. A hedge goes to
// another zone, so it is worth sending when an attempt is already slower
// than the best zone nearly always is. The pool's own p95 would not do:
// when a slow zone takes more than one request in twenty, the pool's p95
// is that zone's latency, and hedging would never start. The floor keeps
// a fast pool's jitter from doubling its load. Zones past hedgeZones are
// not learned from.
const (
	hedgeQuantile   = 95
	hedgeFloor      = 5 * time.Millisecond
	hedgeMinSamples = 20
	hedgeZones      = 4
)

// hedgeLearner learns a pool's hedge delay from each zone's latency.
type hedgeLearner struct {
	zones [hedgeZones]zoneLatency
	value atomic.Int64 // the delay in ns; 0 until learned
	last  atomic.Int64 // the newest slot epoch the value was computed at
}

// zoneLatency is one zone's window of times to headers.
type zoneLatency struct {
	name  atomic.Pointer[string] // nil while the slot is free
	slots [perTrySlots]latencySlot
}

// observe records a successful attempt in zone: its time to headers d,
// at at (time since processStart).
func (l *hedgeLearner) observe(zone string, at, d time.Duration) {
	e := epochAt(at)
	if last := l.last.Load(); e > last && l.last.CompareAndSwap(last, e) {
		l.learn(e)
	}
	if z := l.zone(zone); z != nil {
		record(&z.slots, e, d)
	}
}

// zone returns zone's window, taking a free slot for a zone seen first;
// nil when every slot is another zone's.
func (l *hedgeLearner) zone(name string) *zoneLatency {
	for i := range l.zones {
		z := &l.zones[i]
		n := z.name.Load()
		if n == nil && z.name.CompareAndSwap(nil, &name) {
			return z
		}
		if n = z.name.Load(); n != nil && *n == name {
			return z
		}
	}
	return nil
}

// learn computes the delay from the window ending before epoch now: the
// lowest p95 of a zone with enough samples. With none, it keeps the value
// it had.
func (l *hedgeLearner) learn(now int64) {
	var best time.Duration
	for i := range l.zones {
		z := &l.zones[i]
		var counts [latBuckets]int64
		var total int64
		for j := range z.slots {
			s := &z.slots[j]
			if e := s.epoch.Load(); e < now-perTrySlots || e >= now {
				continue
			}
			for k := range counts {
				c := s.buckets[k].Load()
				counts[k] += c
				total += c
			}
		}
		if total < hedgeMinSamples {
			continue
		}
		if q := quantile(&counts, total, hedgeQuantile); best == 0 || q < best {
			best = q
		}
	}
	if best > 0 {
		l.value.Store(int64(min(max(best, hedgeFloor), perTryCeiling)))
	}
}

// hedgeLearnerOf returns the pool's hedge learner, made on first use.
func (l *perTryLearner) hedgeLearnerOf() *hedgeLearner {
	if h := l.hedge.Load(); h != nil {
		return h
	}
	l.hedge.CompareAndSwap(nil, new(hedgeLearner))
	return l.hedge.Load()
}

// HedgeDelay returns the pool's hedge delay now: 0 without hedging by
// delay, or before it is learned.
func (p *Pool) HedgeDelay() time.Duration { return p.hedgeDelayNow() }

// hedgeDelayNow is the delay after which a new request's attempts hedge,
// 0 for no hedging by delay (off, or not learned yet).
func (p *Pool) hedgeDelayNow() time.Duration {
	h := p.Hedge
	if h.Max <= 0 {
		return 0
	}
	if !h.Auto {
		return h.Delay
	}
	if l := p.perTry.hedge.Load(); l != nil {
		return time.Duration(l.value.Load())
	}
	return 0
}

// observeLatency records a successful attempt's time to headers for what
// the pool learns from it: the per-try timeout, the hedge delay.
func (p *Pool) observeLatency(zone string, at, d time.Duration) {
	if p.Timeouts.PerTryAuto {
		p.perTry.observe(at, d)
	}
	if p.Hedge.Max > 0 && p.Hedge.Auto {
		p.perTry.hedgeLearnerOf().observe(zone, at, d)
	}
}
