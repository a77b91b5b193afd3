package balancer

import (
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Options are a pool's balancing settings. They may change on every config
// reload; Configure publishes a new copy and the next pick uses it.
type Options struct {
	// LocalZone is the proxy's own zone; "" means no zone preference.
	LocalZone string
	// SpillBelow: when the local zone's healthy share falls below it, the
	// missing share of traffic spreads to the other zones in proportion to
	// their healthy capacity. 0 disables spill by health.
	SpillBelow float64
	// PanicBelow: when the pool's healthy share falls below it, picks ignore
	// health and balance over every backend not drained. 0 disables panic.
	PanicBelow float64
	// SlowStart is how long a backend that joins a serving pool, or comes
	// back up, takes to ramp from about 10% to its full weight. 0 disables it.
	SlowStart time.Duration
	// PenaltyHalfLife is how fast the penalty of a failed attempt fades
	// (see Backend.Penalize): it halves every PenaltyHalfLife. 0 turns
	// penalties off.
	PenaltyHalfLife time.Duration
	// QueueSize bounds the requests waiting for capacity when every candidate
	// is at its max_conns; 0 disables the queue.
	QueueSize int
	// QueueTimeout is how long a queued request waits before ErrNoCapacity.
	QueueTimeout time.Duration
	// ActiveChecks says whether an active health checker runs for the pool:
	// then a backend that joins a serving pool waits in StatePending for its
	// first passing check instead of taking traffic at once.
	ActiveChecks bool
	// Policy chooses among the candidates of the zone a pick settled on;
	// the zero value is least-conn.
	Policy Policy
	// Affinity is what the proxy reads from a request to make its Key.
	Affinity Affinity
}

// Rand is the randomness a pool draws on, injected so tests are exact.
// It must be safe for concurrent use. A pick that needs randomness calls
// IntN once, to seed a stream of its own (see prng), so a locked test
// source is not a bottleneck; the pool does not call Float64.
type Rand interface {
	IntN(n int) int
	Float64() float64
}

// globalRand is the default Rand: the runtime's per-thread generator, so
// concurrent picks share no lock.
type globalRand struct{}

func (globalRand) IntN(n int) int   { return rand.IntN(n) }
func (globalRand) Float64() float64 { return rand.Float64() }

// Pool balances requests over one backend set. The set is an immutable
// snapshot swapped with Update; picks read it without locks.
type Pool struct {
	name    string
	rnd     Rand
	nowFn   func() time.Time
	options atomic.Pointer[Options]
	current atomic.Pointer[set]

	mu       sync.Mutex // serialises Update, state writes, zone drains and retiring
	serving  bool       // a non-empty set has been applied once
	retiring map[string]*Backend
	offZones map[string]bool

	// p2cAbove is the number of backends in a range above which least-conn
	// samples two at random instead of scanning them all; see leastConn.
	p2cAbove int

	// ticks counts the pool's releases, ordering them in time for the
	// backends' done marks (approximately: see release). It is written by
	// every release, so it has a cache line of its own, away from the
	// fields every pick reads.
	ticks *releaseTicks

	q queue

	// trials counts backends waiting for a trial request (trial.go), so
	// that PickTrial costs one load while there are none.
	trials atomic.Int32
}

// releaseTicks is the pool's release counter, padded to a cache line (an
// allocation of 64 bytes is 64-byte aligned).
type releaseTicks struct {
	n atomic.Uint64
	_ [56]byte
}

// PoolOption customises a Pool at construction; used by tests.
type PoolOption func(*Pool)

// WithRand injects the pool's randomness.
func WithRand(r Rand) PoolOption { return func(p *Pool) { p.rnd = r } }

// WithClock injects the pool's clock.
func WithClock(now func() time.Time) PoolOption { return func(p *Pool) { p.nowFn = now } }

// NewPool returns an empty pool.
func NewPool(name string, o Options, opts ...PoolOption) *Pool {
	p := &Pool{name: name, rnd: globalRand{}, nowFn: time.Now, retiring: map[string]*Backend{}, offZones: map[string]bool{}, p2cAbove: p2cAbove, ticks: new(releaseTicks)}
	for _, f := range opts {
		f(p)
	}
	p.options.Store(&o)
	p.current.Store(buildSet(nil))
	return p
}

// Name returns the pool's name.
func (p *Pool) Name() string { return p.name }

// Options returns the pool's current settings.
func (p *Pool) Options() Options { return *p.options.Load() }

func (p *Pool) opts() *Options { return p.options.Load() }

func (p *Pool) now() int64 { return p.nowFn().UnixNano() }

// Configure publishes new settings; backends and their state are kept.
// The next pick uses the new policy; a change to hash builds the current
// set's tables first.
func (p *Pool) Configure(o Options) {
	if o.Policy == PolicyHash {
		p.current.Load().hashTables()
	}
	p.options.Store(&o)
	p.wake()
}

// Backends returns the pool's current backends. The slice is shared and
// must not be modified.
func (p *Pool) Backends() []*Backend { return p.current.Load().backends }

// Backend returns the current backend with the address, or nil.
func (p *Pool) Backend(addr string) *Backend {
	return p.current.Load().byAddr[addr]
}

// Update replaces the pool's backend set. Backends present before and after
// keep their live state (their Spec is refreshed); new ones join, in slow
// start if the pool is already serving and in StatePending if it also runs
// active checks; removed ones stop taking requests and are retired once their
// in-flight count reaches zero. The order of specs does not matter; a
// duplicate address keeps its first spec.
func (p *Pool) Update(specs []Spec) {
	p.mu.Lock()
	old := p.current.Load()
	o := p.opts()
	next := make([]*Backend, 0, len(specs))
	seen := make(map[string]bool, len(specs))
	for _, s := range specs {
		if seen[s.Address] {
			continue
		}
		seen[s.Address] = true
		b := old.byAddr[s.Address]
		if b == nil {
			b = p.retiring[s.Address]
		}
		if b == nil {
			st := StateUp
			if p.serving && o.ActiveChecks {
				st = StatePending
			}
			b = newBackend(p, s, st)
			if p.serving {
				b.startRamp()
			}
		} else {
			b.spec.Store(&s)
			delete(p.retiring, s.Address)
		}
		// The old set's tally is dropped with it, so flags are set on the
		// word directly; buildSet counts the new tally.
		w := b.word.Load() &^ (flagRemoved | flagZoneOff)
		if p.offZones[s.Zone] {
			w |= flagZoneOff
		}
		b.word.Store(w)
		next = append(next, b)
	}
	// Publish first, then mark the removed: a pick still reading the old set
	// must not find every backend of it removed while the new set is not
	// yet visible (when a reload swaps the whole set, that was a 503).
	ns := buildSet(next)
	if o.Policy == PolicyHash {
		ns.hashTables() // before the set is visible, off the pick path
	}
	p.current.Store(ns)
	for _, b := range old.backends {
		if !seen[b.addr] {
			b.word.Store(b.word.Load() | flagRemoved)
			b.EndTrial()
			b.zone = -1
			if b.InFlight() > 0 {
				p.retiring[b.addr] = b
			}
		}
	}
	p.serving = p.serving || len(next) > 0
	p.mu.Unlock()
	p.wake()
}

// Retiring returns the backends removed from the set that still serve
// requests, sorted by address. Release retires each one as its last
// request ends, so observers see them only while they drain.
func (p *Pool) Retiring() []*Backend {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]*Backend, 0, len(p.retiring))
	for _, b := range p.retiring {
		out = append(out, b)
	}
	slices.SortFunc(out, func(a, b *Backend) int { return compareStrings(a.addr, b.addr) })
	return out
}

// retire forgets a removed backend whose last request ended.
func (p *Pool) retire(b *Backend) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.retiring[b.addr] == b && b.Removed() && b.InFlight() <= 0 {
		delete(p.retiring, b.addr)
	}
}

// storeWordLocked writes a backend's state word and keeps the current set's
// tally exact. It reports whether the backend went out (was available and
// is not): the caller then runs b.wentOut once it released p.mu. Any word
// but a plain ejection ends the backend's trial. The caller holds p.mu.
func (p *Pool) storeWordLocked(b *Backend, w uint32) (out bool) {
	was := b.word.Swap(w) == uint32(StateUp)
	is := w == uint32(StateUp)
	if w != uint32(StateEjected) {
		b.EndTrial()
	}
	if was == is {
		return false
	}
	if b.zone >= 0 {
		n := int64(1)
		if !is {
			n = -1
		}
		p.current.Load().tally.add(b.zone, n, fixedWeight(b.spec.Load()))
	}
	return was
}

// setFlagLocked sets or clears a flag bit and reports whether it changed
// and whether the backend went out (see storeWordLocked).
func (p *Pool) setFlagLocked(b *Backend, f uint32, on bool) (changed, out bool) {
	w := b.word.Load()
	n := w &^ f
	if on {
		n |= f
	}
	if n == w {
		return false, false
	}
	return true, p.storeWordLocked(b, n)
}

// SetZoneDrained drains (on) or re-enables (off) every backend of a zone,
// including backends that join the zone later. It reports whether the zone's
// setting changed.
func (p *Pool) SetZoneDrained(zone string, on bool) bool {
	p.mu.Lock()
	changed := p.offZones[zone] != on
	if on {
		p.offZones[zone] = true
	} else {
		delete(p.offZones, zone)
	}
	var gone []*Backend
	for _, b := range p.current.Load().backends {
		if b.Zone() == zone {
			if _, out := p.setFlagLocked(b, flagZoneOff, on); out {
				gone = append(gone, b)
			}
		}
	}
	p.mu.Unlock()
	if changed && !on {
		p.wake()
	}
	for _, b := range gone {
		b.wentOut()
	}
	return changed
}

// ZoneDrained reports whether an operator drained the zone.
func (p *Pool) ZoneDrained(zone string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.offZones[zone]
}
