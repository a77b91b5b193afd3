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
)

// Backend is one server of a pool: its Spec plus live state in atomics. A
// Backend is created once per address and pool and never copied; every
// config reload and discovery update that keeps the address keeps the
// Backend, so its in-flight count, health and slow start carry over.
type Backend struct {
	addr string
	pool *Pool

	spec     atomic.Pointer[Spec]
	word     atomic.Uint32 // State | flag bits
	inFlight atomic.Int64
	// rampFrom is when slow start began, in nanoseconds of the pool clock;
	// 0 once the ramp is over or if it never started.
	rampFrom atomic.Int64
}

func newBackend(p *Pool, s Spec, st State) *Backend {
	b := &Backend{addr: s.Address, pool: p}
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
// capacity; see HasCapacity. Every selection path asks this one predicate.
func (b *Backend) Available() bool { return b.word.Load() == uint32(StateUp) }

// HasCapacity reports whether the backend is below its max_conns.
func (b *Backend) HasCapacity() bool {
	m := b.spec.Load().MaxConns
	return m <= 0 || b.inFlight.Load() < int64(m)
}

// SetState moves the backend to state to and reports the state it left and
// whether anything changed, so callers log and count transitions only. A
// backend coming back up starts its slow-start ramp.
func (b *Backend) SetState(to State) (from State, changed bool) {
	for {
		w := b.word.Load()
		from = State(w & stateMask)
		if from == to {
			return from, false
		}
		if b.word.CompareAndSwap(w, w&^stateMask|uint32(to)) {
			if to == StateUp {
				b.startRamp()
				b.pool.wake()
			}
			return from, true
		}
	}
}

// SetDrained drains (on) or re-enables (off) the backend for new requests;
// requests in flight finish. It reports whether anything changed.
func (b *Backend) SetDrained(on bool) bool { return b.setFlag(flagDrained, on) }

func (b *Backend) setFlag(f uint32, on bool) bool {
	for {
		w := b.word.Load()
		n := w &^ f
		if on {
			n |= f
		}
		if n == w {
			return false
		}
		if b.word.CompareAndSwap(w, n) {
			if !on {
				b.pool.wake()
			}
			return true
		}
	}
}

// tryAcquire counts a new request on the backend unless that would exceed
// its max_conns.
func (b *Backend) tryAcquire() bool {
	m := int64(b.spec.Load().MaxConns)
	if m <= 0 {
		b.inFlight.Add(1)
		return true
	}
	for {
		n := b.inFlight.Load()
		if n >= m {
			return false
		}
		if b.inFlight.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// Release ends a request that Pick counted on the backend. It must be called
// exactly once per successful Pick.
func (b *Backend) Release() {
	b.inFlight.Add(-1)
	b.pool.wake()
}

func (b *Backend) startRamp() {
	if b.pool.opts().SlowStart > 0 {
		b.rampFrom.Store(b.pool.now())
	}
}

// minRamp is the share of its weight a backend gets at the start of slow start.
const minRamp = 0.1

// effectiveWeight is the weight scaled by the slow-start ramp: from about 10%
// when the ramp begins to 100% after the pool's slow_start.
func (b *Backend) effectiveWeight(s *Spec, slow time.Duration, now func() int64) float64 {
	w := float64(s.weight())
	from := b.rampFrom.Load()
	if from == 0 || slow <= 0 {
		return w
	}
	elapsed := now() - from
	if elapsed >= int64(slow) {
		b.rampFrom.CompareAndSwap(from, 0)
		return w
	}
	f := float64(elapsed) / float64(slow)
	if f < minRamp {
		f = minRamp
	}
	return w * f
}
