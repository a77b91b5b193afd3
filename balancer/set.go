package balancer

import (
	"slices"
	"sync/atomic"
)

// maxZones is the number of zones a pool tells apart (one bit each in a
// uint64 mask); a pool with more zones lumps the rest into the last one.
const maxZones = 64

// weightShift scales weights to fixed point so slow start can ramp them in
// integers: a weight of 1 is 1<<weightShift.
const weightShift = 10

// maxWeight caps a configured weight so that in-flight × weight products in
// score comparisons cannot overflow.
const maxWeight = 1 << 20

// entry is one backend of a set with the static numbers a pick needs, copied
// from its Spec when the set was built so the scan reads no Spec pointer.
type entry struct {
	b        *Backend
	weight   int64 // Spec.weight() << weightShift
	maxConns int64 // 0: no cap
}

// zone is the range of a set's entries that belong to one zone.
type zone struct {
	name   string
	lo, hi int
}

// tally is the live health of a set's zones, kept exact: every write of a
// backend's state word happens under Pool.mu and adjusts the tally of the
// set the backend belongs to, and a new set's tally is counted under the
// same lock. Picks read it with atomic loads instead of scanning the set.
type tally struct {
	healthy atomic.Int64 // backends available, pool-wide
	zones   []zoneTally
}

type zoneTally struct {
	healthy atomic.Int64 // available backends of the zone
	weight  atomic.Int64 // summed weights of those backends
	_       [48]byte     // keep zones on separate cache lines
}

// set is one generation of a pool's backends, sorted by zone then address.
// Its layout never changes once published; only its tally moves.
type set struct {
	backends []*Backend
	entries  []entry
	zones    []zone
	byAddr   map[string]*Backend
	tally    *tally
	// maxWeight is the largest entry weight, for weighted draws.
	maxWeight int64
	// pins maps each backend's sticky token to its entry (sticky.go).
	pins map[uint64]int32
	// rr are the entries' current weights for round robin (roundrobin.go).
	rr []rrCounter
	// maglev holds the hash policy's tables (maglev.go), built once. It
	// is a pointer so that a pick's atomic load of it does not make the
	// pick's context escape to the heap (TestPickDoesNotAllocate).
	maglev *maglevSlot
}

// buildSet sorts bs into a new set, points each backend at its zone and
// counts the zones' health. The caller holds Pool.mu.
func buildSet(bs []*Backend) *set {
	slices.SortFunc(bs, func(a, b *Backend) int {
		if c := compareStrings(a.Zone(), b.Zone()); c != 0 {
			return c
		}
		return compareStrings(a.addr, b.addr)
	})
	s := &set{
		backends: bs,
		entries:  make([]entry, len(bs)),
		byAddr:   make(map[string]*Backend, len(bs)),
		tally:    &tally{},
		pins:     make(map[uint64]int32, len(bs)),
		rr:       make([]rrCounter, len(bs)),
		maglev:   &maglevSlot{},
	}
	for i, b := range bs {
		sp := b.spec.Load()
		z := sp.Zone
		if n := len(s.zones); n == 0 || (s.zones[n-1].name != z && n < maxZones) {
			s.zones = append(s.zones, zone{name: z, lo: i})
		}
		zi := len(s.zones) - 1
		s.zones[zi].hi = i + 1
		s.entries[i] = entry{b: b, weight: fixedWeight(sp), maxConns: int64(max(sp.MaxConns, 0))}
		s.byAddr[b.addr] = b
		s.maxWeight = max(s.maxWeight, s.entries[i].weight)
		if _, dup := s.pins[b.pin]; !dup {
			s.pins[b.pin] = int32(i)
		}
		b.zone = zi
	}
	s.tally.zones = make([]zoneTally, len(s.zones))
	for _, e := range s.entries {
		if e.b.word.Load() == uint32(StateUp) {
			s.tally.add(e.b.zone, 1, e.weight)
		}
	}
	return s
}

// fixedWeight is the spec's weight, capped and in fixed point.
func fixedWeight(sp *Spec) int64 { return int64(min(sp.weight(), maxWeight)) << weightShift }

// add moves n backends of zone zi, each of the weight, in or out of the
// healthy count.
func (t *tally) add(zi int, n, weight int64) {
	t.healthy.Add(n)
	t.zones[zi].healthy.Add(n)
	t.zones[zi].weight.Add(n * weight)
}

// zoneIndex returns the index of the named zone, or -1.
func (s *set) zoneIndex(name string) int {
	for i := range s.zones {
		if s.zones[i].name == name {
			return i
		}
	}
	return -1
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
