package balancer

import "sync/atomic"

// Consistent hashing: a Maglev lookup table (Eisenbud et al., NSDI 2016)
// per zone of a set, and one over the whole set (panic, or no zone
// preference). Zone preference comes first: a request is hashed within the
// zone the pick chose, so a key keeps its backend while its zone keeps it,
// and spill, panic and retries move it as they move any request.
//
// Maglev rather than a bounded-load ring: a lookup is one modulo and one
// load, the table is built once per set (immutable, like the set), and a
// backend that leaves moves its own keys, about 1/n of them, and a sliver
// of the others' (TestHashKeepsKeysWhenOneLeaves). A ring moves exactly
// the leaver's keys but needs thousands of points per backend to split
// traffic as evenly. Weights are honoured when the table is filled: a
// backend of weight 2 takes two slots per round.
//
// A key whose backend cannot take it (down, drained, at max_conns, tried
// by this request) walks the table from its slot to the next backend
// that can: deterministic, and since slots interleave backends, the keys
// of one backend out spread over all the others. A backend in slow start
// takes, of its keys, those whose per-backend draw falls under its ramp:
// the same keys for the whole ramp, more of them as it goes.

// maglevSize is the number of slots of every table: a prime, so every
// skip walks a full permutation, and the same for every set. A size that
// grew with the number of backends would reshuffle every key when a
// backend leaving crossed a size step (tried: 95% of keys moved). At this
// size, a backend leaving one of 20 moves its own keys and about 0.5% of
// the others' (Maglev's rebuild is not perfectly minimal; a table of
// 2,039 slots moved 2.6% more). A table is 256KiB, built only for pools
// that hash; a zone that is the whole set shares the set's.
const maglevSize = 65521

// maglevTables are a set's lookup tables: all for the whole set, zones[i]
// for zone i. Slots hold indexes into the set's entries.
type maglevTables struct {
	all   []int32
	zones [][]int32
}

// maglevSlot is where a set keeps its tables once built.
type maglevSlot struct{ p atomic.Pointer[maglevTables] }

// hashTables returns the set's Maglev tables, building them on first use.
// A pool whose policy is hash builds them with the set (Update) or when
// the policy changes (Configure), so a pick finds them built; building
// here only covers a set published in between.
func (s *set) hashTables() *maglevTables {
	if t := s.maglev.p.Load(); t != nil {
		return t
	}
	t := &maglevTables{all: buildMaglev(s.entries, 0, len(s.entries))}
	t.zones = make([][]int32, len(s.zones))
	for i, z := range s.zones {
		if z.lo == 0 && z.hi == len(s.entries) {
			t.zones[i] = t.all // one zone: the same table
			continue
		}
		t.zones[i] = buildMaglev(s.entries, z.lo, z.hi)
	}
	if s.maglev.p.CompareAndSwap(nil, t) {
		return t
	}
	return s.maglev.p.Load()
}

// buildMaglev fills the table of entries[lo:hi]. Each backend has a
// permutation of the slots from its address (offset and skip); in rounds,
// each backend claims the next free slot of its permutation, a backend of
// weight w in w/maxWeight of the rounds (Envoy's weighted Maglev). The
// table depends only on the backends' addresses and weights, not on their
// order or on anything else in the set.
func buildMaglev(entries []entry, lo, hi int) []int32 {
	n := hi - lo
	if n <= 0 {
		return nil
	}
	m := maglevSize
	pos := make([]int, n) // the next slot of each permutation: offset + j*skip mod m
	skip := make([]int, n)
	credit := make([]int64, n)
	var maxW int64
	for i := range n {
		h := fnv64(entries[lo+i].b.addr)
		pos[i] = int(h % uint64(m))
		skip[i] = int(mix64(h^0x9e3779b97f4a7c15)%uint64(m-1)) + 1
		maxW = max(maxW, entries[lo+i].weight)
	}
	slots := make([]int32, m)
	for i := range slots {
		slots[i] = -1
	}
	for filled := 0; filled < m; {
		for i := 0; i < n && filled < m; i++ {
			credit[i] += entries[lo+i].weight
			if credit[i] < maxW {
				continue
			}
			credit[i] -= maxW
			for {
				c := pos[i]
				if pos[i] += skip[i]; pos[i] >= m {
					pos[i] -= m
				}
				if slots[c] < 0 {
					slots[c] = int32(lo + i)
					filled++
					break
				}
			}
		}
	}
	return slots
}

// hashed looks the request's hash up in the table of entries[lo:hi] and
// walks on from its slot to the first backend that can take it. A request
// without a hash is balanced by least-conn.
func (c *pickCtx) hashed(lo, hi int, anyState bool) *entry {
	k := c.key
	if k == nil || !k.HasHash {
		return c.leastConn(lo, hi, anyState)
	}
	table := c.s.hashTables().forRange(c.s, lo, hi)
	if len(table) == 0 {
		return nil
	}
	if !anyState && c.s.healthyIn(lo, hi) == 0 || !c.anyCandidate(lo, hi, anyState) {
		// Nothing to walk to: every backend is out, tried or full, and
		// the walk would visit all of the table's 65,521 slots.
		return nil
	}
	m := len(table)
	slot := int(k.Hash % uint64(m))
	var ramping *entry // the first candidate its ramp turned down
	for range m {
		e := &c.s.entries[table[slot]]
		if _, ok := c.candidate(e, anyState); ok {
			if c.rampAdmits(e, k.Hash) {
				return e
			}
			if ramping == nil {
				ramping = e
			}
		}
		if slot++; slot == m {
			slot = 0
		}
	}
	// Only ramping backends can take it: better one of them than none.
	return ramping
}

// anyCandidate reports whether a backend of entries[lo:hi] can take the
// request: one pass over the range, which bounds what a hash pick costs
// when none can.
func (c *pickCtx) anyCandidate(lo, hi int, anyState bool) bool {
	for i := lo; i < hi; i++ {
		if _, ok := c.candidate(&c.s.entries[i], anyState); ok {
			return true
		}
	}
	return false
}

// forRange returns the table of entries[lo:hi]: a zone's, or the whole
// set's.
func (t *maglevTables) forRange(s *set, lo, hi int) []int32 {
	if lo == 0 && hi == len(s.entries) {
		return t.all
	}
	for i, z := range s.zones {
		if z.lo == lo && z.hi == hi {
			return t.zones[i]
		}
	}
	return nil
}

// healthyIn is the number of available backends of entries[lo:hi] by the
// tally: a zone's, or the whole set's.
func (s *set) healthyIn(lo, hi int) int64 {
	if lo == 0 && hi == len(s.entries) {
		return s.tally.healthy.Load()
	}
	for i, z := range s.zones {
		if z.lo == lo && z.hi == hi {
			return s.tally.zones[i].healthy.Load()
		}
	}
	return 1 // not a known range: let the walk decide
}

// rampAdmits reports whether a backend in slow start takes this key now:
// a draw from the key and the backend, fixed for the pair, against the
// share of its weight the ramp has reached. A backend not ramping takes
// every key.
func (c *pickCtx) rampAdmits(e *entry, hash uint64) bool {
	if e.b.rampFrom.Load() == 0 {
		return true
	}
	w := e.b.rampWeight(e.weight, c.slow, &c.clock)
	if w >= e.weight {
		return true
	}
	draw := int64(mix64(hash^e.b.pin) >> (64 - weightShift)) // in [0, 1<<weightShift)
	return draw*e.weight < w<<weightShift
}
