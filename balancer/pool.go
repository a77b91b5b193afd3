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
	// QueueSize bounds the requests waiting for capacity when every candidate
	// is at its max_conns; 0 disables the queue.
	QueueSize int
	// QueueTimeout is how long a queued request waits before ErrNoCapacity.
	QueueTimeout time.Duration
	// ActiveChecks says whether an active health checker runs for the pool:
	// then a backend that joins a serving pool waits in StatePending for its
	// first passing check instead of taking traffic at once.
	ActiveChecks bool
}

// Rand is the randomness a pool draws on, injected so tests are exact.
// It must be safe for concurrent use.
type Rand interface {
	IntN(n int) int
	Float64() float64
}

type globalRand struct{}

func (globalRand) IntN(n int) int   { return rand.IntN(n) }
func (globalRand) Float64() float64 { return rand.Float64() }

// set is one immutable generation of a pool's backends, grouped by zone.
type set struct {
	backends []*Backend
	zoneOf   []uint8  // zone index of backends[i]
	zones    []string // distinct zones, sorted
}

// Pool balances requests over one backend set. The set is an immutable
// snapshot swapped with Update; picks read it without locks.
type Pool struct {
	name    string
	rnd     Rand
	nowFn   func() time.Time
	options atomic.Pointer[Options]
	current atomic.Pointer[set]

	mu       sync.Mutex // serialises Update, zone drains and retiring
	serving  bool       // a set has been applied once
	retiring map[string]*Backend
	offZones map[string]bool

	q queue
}

// PoolOption customises a Pool at construction; used by tests.
type PoolOption func(*Pool)

// WithRand injects the pool's randomness.
func WithRand(r Rand) PoolOption { return func(p *Pool) { p.rnd = r } }

// WithClock injects the pool's clock.
func WithClock(now func() time.Time) PoolOption { return func(p *Pool) { p.nowFn = now } }

// NewPool returns an empty pool.
func NewPool(name string, o Options, opts ...PoolOption) *Pool {
	p := &Pool{name: name, rnd: globalRand{}, nowFn: time.Now, retiring: map[string]*Backend{}, offZones: map[string]bool{}}
	for _, f := range opts {
		f(p)
	}
	p.options.Store(&o)
	p.current.Store(&set{})
	p.q.init()
	return p
}

// Name returns the pool's name.
func (p *Pool) Name() string { return p.name }

// Options returns the pool's current settings.
func (p *Pool) Options() Options { return *p.options.Load() }

func (p *Pool) opts() *Options { return p.options.Load() }

func (p *Pool) now() int64 { return p.nowFn().UnixNano() }

// Configure publishes new settings; backends and their state are kept.
func (p *Pool) Configure(o Options) {
	p.options.Store(&o)
	p.wake()
}

// Backends returns the pool's current backends. The slice is shared and
// must not be modified.
func (p *Pool) Backends() []*Backend { return p.current.Load().backends }

// Backend returns the current backend with the address, or nil.
func (p *Pool) Backend(addr string) *Backend {
	for _, b := range p.current.Load().backends {
		if b.addr == addr {
			return b
		}
	}
	return nil
}

// Update replaces the pool's backend set. Backends present before and after
// keep their live state (their Spec is refreshed); new ones join, in slow
// start if the pool is already serving and in StatePending if it also runs
// active checks; removed ones stop taking requests and are retired once their
// in-flight count reaches zero. The order of specs does not matter; a
// duplicate address keeps its first spec.
func (p *Pool) Update(specs []Spec) {
	p.mu.Lock()
	defer p.mu.Unlock()
	old := p.current.Load()
	byAddr := make(map[string]*Backend, len(old.backends)+len(p.retiring))
	for _, b := range old.backends {
		byAddr[b.addr] = b
	}
	for a, b := range p.retiring {
		byAddr[a] = b
	}
	o := p.opts()
	next := make([]*Backend, 0, len(specs))
	seen := make(map[string]bool, len(specs))
	for _, s := range specs {
		if seen[s.Address] {
			continue
		}
		seen[s.Address] = true
		b := byAddr[s.Address]
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
			b.setFlag(flagRemoved, false)
			delete(p.retiring, s.Address)
		}
		b.setFlag(flagZoneOff, p.offZones[s.Zone])
		next = append(next, b)
	}
	for _, b := range old.backends {
		if !seen[b.addr] {
			b.setFlag(flagRemoved, true)
			p.retiring[b.addr] = b
		}
	}
	p.sweepLocked()
	p.current.Store(buildSet(next))
	p.serving = true
	p.wake()
}

func buildSet(bs []*Backend) *set {
	slices.SortFunc(bs, func(a, b *Backend) int {
		if c := compareStrings(a.Zone(), b.Zone()); c != 0 {
			return c
		}
		return compareStrings(a.addr, b.addr)
	})
	s := &set{backends: bs, zoneOf: make([]uint8, len(bs))}
	for i, b := range bs {
		z := b.Zone()
		if len(s.zones) == 0 || s.zones[len(s.zones)-1] != z {
			s.zones = append(s.zones, z)
		}
		s.zoneOf[i] = uint8(min(len(s.zones)-1, maxZones-1))
	}
	return s
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Retiring returns the backends removed from the set that still serve
// requests, and forgets those that finished.
func (p *Pool) Retiring() []*Backend {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sweepLocked()
	out := make([]*Backend, 0, len(p.retiring))
	for _, b := range p.retiring {
		out = append(out, b)
	}
	return out
}

func (p *Pool) sweepLocked() {
	for a, b := range p.retiring {
		if b.inFlight.Load() <= 0 {
			delete(p.retiring, a)
		}
	}
}

// SetZoneDrained drains (on) or re-enables (off) every backend of a zone,
// including backends that join the zone later. It reports whether the zone's
// setting changed.
func (p *Pool) SetZoneDrained(zone string, on bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	changed := p.offZones[zone] != on
	if on {
		p.offZones[zone] = true
	} else {
		delete(p.offZones, zone)
	}
	for _, b := range p.current.Load().backends {
		if b.Zone() == zone {
			b.setFlag(flagZoneOff, on)
		}
	}
	return changed
}

// ZoneDrained reports whether an operator drained the zone.
func (p *Pool) ZoneDrained(zone string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.offZones[zone]
}
