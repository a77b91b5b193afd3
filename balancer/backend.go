package balancer

import (
	"sync/atomic"
	"time"
)

// State is a backend's health as seen by active checks and outlier detection.
type State uint8

const (
	// StateUp takes traffic.
	StateUp State = iota
	// StateDown failed its active checks.
	StateDown
	// StateEjected was ejected by passive outlier detection.
	StateEjected
	// StatePending joined while the pool was serving and waits for its first
	// passing active check before it takes traffic.
	StatePending
)

var stateNames = [...]string{"up", "down", "ejected", "pending"}

// String returns the lowercase name used in logs, metrics and the admin API.
func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "unknown"
}

// Flag bits stored above the state byte in Backend.word. Keeping state and
// flags in one word makes Available a single atomic load.
const (
	stateMask   uint32 = 0xff
	flagDrained uint32 = 1 << 8  // an operator drained this backend
	flagZoneOff uint32 = 1 << 9  // an operator drained this backend's zone
	flagRemoved uint32 = 1 << 10 // gone from the pool's set; retiring
	flagsOff           = flagDrained | flagZoneOff | flagRemoved
)

// Backend is one server of a pool: its Spec plus live state in atomics. A
// Backend is created once per address and pool and never copied; every
// config reload and discovery update that keeps the address keeps the
// Backend, so its in-flight count, health and slow start carry over.
//
// Readers (Pick, Available, observers) use atomic loads only. Writers of
// the state word take the pool's lock, which keeps the pool's per-zone
// health tally exact; they are rare (health transitions, drains, updates).
type Backend struct {
	addr string
	pool *Pool

	spec atomic.Pointer[Spec]
	word atomic.Uint32 // State | flag bits
	// inFlight is the backend's exact count of requests in flight: every
	// pick compares it and every pick and release writes it, from any
	// core (docs/decisions/0015-exact-least-connections.md).
	inFlight atomic.Int64
	// done is the pool's release tick (Pool.ticks) when a request of the
	// backend last ended: which of two equally busy backends made progress
	// more recently (see leastConn).
	done atomic.Uint64
	// watches are the requests on the backend that wait to hear when it
	// goes out (watch.go).
	watches watchList
	// rampFrom is when slow start began, in nanoseconds of the pool clock;
	// 0 once the ramp is over or if it never started.
	rampFrom atomic.Int64
	// penalty is the soft penalty of recent failed attempts (penalty.go):
	// its amount in connections and when it was set, packed in one word.
	penalty atomic.Uint64
	// trial is the backend's trial request after an ejection (trial.go).
	trial atomic.Uint32
	// pin is the backend's sticky token, from its address (sticky.go).
	pin uint64

	zone int // index of the zone in the pool's current set; -1 if removed. Guarded by Pool.mu.
}

func newBackend(p *Pool, s Spec, st State) *Backend {
	b := &Backend{addr: s.Address, pool: p, zone: -1, pin: pinOf(s.Address)}
	b.spec.Store(&s)
	b.word.Store(uint32(st))
	return b
}

// Address returns the backend's host:port.
func (b *Backend) Address() string { return b.addr }

// Spec returns the backend's current static description.
func (b *Backend) Spec() Spec { return *b.spec.Load() }

// Zone returns the backend's availability zone.
func (b *Backend) Zone() string { return b.spec.Load().Zone }

// InFlight returns the number of requests the backend is serving now.
func (b *Backend) InFlight() int64 { return b.inFlight.Load() }

// State returns the backend's health state.
func (b *Backend) State() State { return State(b.word.Load() & stateMask) }

// Drained reports whether an operator drained the backend or its zone.
func (b *Backend) Drained() bool { return b.word.Load()&(flagDrained|flagZoneOff) != 0 }

// Removed reports whether the backend left its pool's set and is retiring.
func (b *Backend) Removed() bool { return b.word.Load()&flagRemoved != 0 }

// Available reports whether the backend may take a new request: it is up,
// not drained (itself or its zone) and still in its pool. It ignores
// capacity; see HasCapacity. Every selection path asks this one predicate
// (inlined in the pick loops as word == StateUp).
func (b *Backend) Available() bool { return b.word.Load() == uint32(StateUp) }

// HasCapacity reports whether the backend is below its max_conns.
func (b *Backend) HasCapacity() bool {
	m := b.spec.Load().MaxConns
	return m <= 0 || b.InFlight() < int64(m)
}

// SetState moves the backend to state to and reports the state it left and
// whether anything changed, so callers log and count transitions only. A
// backend coming back up starts its slow-start ramp before it is visible as
// up, so no pick sees it up at full weight.
func (b *Backend) SetState(to State) (from State, changed bool) {
	if from = b.State(); from == to {
		return from, false // the common case for a health checker: no lock
	}
	p := b.pool
	p.mu.Lock()
	w := b.word.Load()
	if from = State(w & stateMask); from == to {
		p.mu.Unlock()
		return from, false
	}
	if to == StateUp {
		b.startRamp()
		b.penalty.Store(0)
	}
	out := p.storeWordLocked(b, w&^stateMask|uint32(to))
	p.mu.Unlock()
	if to == StateUp {
		p.wake()
	}
	if out {
		b.wentOut()
	}
	return from, true
}

// SetDrained drains (on) or re-enables (off) the backend for new requests;
// requests in flight finish. It reports whether anything changed.
func (b *Backend) SetDrained(on bool) bool {
	p := b.pool
	p.mu.Lock()
	changed, out := p.setFlagLocked(b, flagDrained, on)
	p.mu.Unlock()
	if changed && !on {
		p.wake()
	}
	if out {
		b.wentOut()
	}
	return changed
}

// tryAcquire counts a new request on the backend unless that would exceed
// maxConns (0: no cap). The count is exact, so the cap is.
func (b *Backend) tryAcquire(maxConns int64) bool {
	c := &b.inFlight
	if maxConns <= 0 {
		c.Add(1)
		return true
	}
	for {
		n := c.Load()
		if n >= maxConns {
			return false
		}
		if c.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// release ends a request. A removed backend whose last request ends is
// retired here; a queued request gets the freed slot.
func (b *Backend) release() {
	p := b.pool
	n := b.inFlight.Add(-1)
	// A load and a store, not an atomic add: two releases at once may
	// share a tick (their backends then tie at random), which costs less
	// than a locked instruction on every release.
	tick := &p.ticks.n
	t := tick.Load() + 1
	tick.Store(t)
	b.done.Store(t)
	if n <= 0 && b.word.Load()&flagRemoved != 0 {
		p.retire(b)
	}
	if p.q.waiting.Load() != 0 {
		p.wake()
	}
}

// undo gives back a slot pick took and did not use. Unlike release it
// wakes no queued request: pick also runs inside the queue's lock, which
// release would take again.
func (b *Backend) undo() {
	if b.inFlight.Add(-1) <= 0 && b.word.Load()&flagRemoved != 0 {
		b.pool.retire(b)
	}
}

// startRamp begins slow start now. The pool clock's zero instant is stored
// as 1ns, since 0 means "no ramp".
func (b *Backend) startRamp() {
	if b.pool.opts().SlowStart <= 0 {
		return
	}
	b.rampFrom.Store(max(b.pool.now(), 1))
}

// minRamp is the share of its weight, in 1/(1<<weightShift) units, a backend
// gets at the start of slow start: about 10%.
const minRamp = (1 << weightShift) / 10

// rampWeight is weight (fixed point) scaled by the slow-start ramp: from
// about 10% when the ramp begins to 100% after slow. The clock is read only
// when a ramp is running. A finished ramp is cleared so later picks skip the clock.
func (b *Backend) rampWeight(weight int64, slow time.Duration, c *clock) int64 {
	from := b.rampFrom.Load()
	if from == 0 || slow <= 0 {
		return weight
	}
	elapsed := c.now() - from
	if elapsed >= int64(slow) {
		b.rampFrom.CompareAndSwap(from, 0)
		return weight
	}
	f := max(elapsed<<weightShift/int64(slow), minRamp)
	return max(weight*f>>weightShift, 1)
}
