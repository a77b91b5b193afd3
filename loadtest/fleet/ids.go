package fleet

import (
	"strconv"
	"strings"
	"sync"
)

// Delivery is how the fleet received the requests of one method that
// carried an ID (Options.IDHeader).
type Delivery struct {
	// IDs is the number of distinct IDs received.
	IDs int64 `json:"ids"`
	// Duplicated is the number of IDs received more than once, on one
	// backend or several: for a method that is not safe to replay (POST,
	// PATCH) each is a request the proxy delivered twice.
	Duplicated int64 `json:"duplicated"`
	// Extra is the number of arrivals beyond each ID's first.
	Extra int64 `json:"extra_deliveries"`
}

// maxSeq bounds the sequence numbers kept in bitsets (2^27 IDs, 16 MB per
// bitset); a larger one is kept by name like any foreign ID.
const maxSeq = 1 << 27

// deliveries counts, across the fleet, how many times each request ID
// arrived. azload's IDs are "<token>-<n>" with n counting from 1, so the
// IDs of one run are kept as bits (a 30 s run at 30,000 requests per
// second costs 110 KB per bitset, not the ~100 MB of a map of strings);
// IDs of any other form go to a map.
type deliveries struct {
	mu      sync.Mutex
	token   string   // the run token of the first sequence ID seen
	once    []uint64 // bit n: ID n arrived at least once
	twice   []uint64 // bit n: ID n arrived at least twice
	other   map[string]int64
	methods map[string]*Delivery
}

func newDeliveries() *deliveries {
	return &deliveries{other: map[string]int64{}, methods: map[string]*Delivery{}}
}

// record notes one arrival of id, carried by a request of method.
func (d *deliveries) record(method, id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	m := d.methods[method]
	if m == nil {
		m = &Delivery{}
		d.methods[method] = m
	}
	var arrivals int64 // this arrival's rank: 1 for the first, 2 for the second, 3 for "more"
	if n, ok := d.seq(id); ok {
		switch {
		case !testBit(d.once, n):
			d.once = setBit(d.once, n)
			arrivals = 1
		case !testBit(d.twice, n):
			d.twice = setBit(d.twice, n)
			arrivals = 2
		default:
			arrivals = 3
		}
	} else {
		d.other[id]++
		arrivals = min(d.other[id], 3)
	}
	switch arrivals {
	case 1:
		m.IDs++
	case 2:
		m.Duplicated++
		m.Extra++
	default:
		m.Extra++
	}
}

// seq returns n for an ID "<token>-<n>" of the run whose token came first.
func (d *deliveries) seq(id string) (int, bool) {
	i := strings.LastIndexByte(id, '-')
	if i <= 0 {
		return 0, false
	}
	n, err := strconv.Atoi(id[i+1:])
	if err != nil || n < 0 || n >= maxSeq {
		return 0, false
	}
	if d.token == "" {
		d.token = id[:i]
	}
	return n, id[:i] == d.token
}

func (d *deliveries) snapshot() map[string]Delivery {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[string]Delivery, len(d.methods))
	for k, v := range d.methods {
		out[k] = *v
	}
	return out
}

func testBit(bits []uint64, n int) bool {
	return n/64 < len(bits) && bits[n/64]&(1<<(n%64)) != 0
}

func setBit(bits []uint64, n int) []uint64 {
	if w := n / 64; w >= len(bits) {
		bits = append(bits, make([]uint64, w+1-len(bits))...)
	}
	bits[n/64] |= 1 << (n % 64)
	return bits
}
