package balancer

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// Picks from many cores at once must not all write the same counters: an
// exact, pool-wide in-flight count per backend is a cache line that every
// pick and every release of that backend writes, and on a shared pool the
// cores then take turns owning it, so throughput stops growing with cores
// (BenchmarkPick/parallel, before shards: about 45 ns per pick on one core,
// about 100 ns on two). Envoy answers this with one load balancer per
// worker thread; Azimuth does the same inside one pool. A pool has a shard
// per core (GOMAXPROCS rounded up to a power of two, at most maxShards);
// each backend keeps one in-flight counter per shard, on a cache line of
// its own; a pick counts its request in its core's shard and compares
// backends by that shard's counts only. Each shard is exact
// least-connections over the requests it started, and since each core's
// requests are spread evenly, so is their sum. Backend.InFlight, the
// status and max_conns see the sum.
//
// Shards give up exactness where it is a promise: a set in which any
// backend has max_conns counts every request in shard 0, so caps and the
// queue stay exact, at the cost of sharing that pool's counters.

// maxShards bounds a pool's shards, and so each backend's counters
// (64 bytes each).
const maxShards = 16

// counter is one shard's in-flight count of a backend, alone on its cache
// line so that cores counting in different shards never share one. done
// is the shard's release tick (Pool.ticks) when a request of the backend
// last ended in the shard: which of two equally busy backends made
// progress more recently (see leastConn). watches are the requests of the
// shard that wait to hear when the backend goes out (watch.go).
type counter struct {
	n       atomic.Int64
	done    atomic.Uint64
	watches watchList
	_       [32]byte
}

// shardsFor returns the number of shards for n cores: a power of two, so
// a hint maps to a shard with a mask.
func shardsFor(n int) int {
	s := 1
	for s < n && s < maxShards {
		s <<= 1
	}
	return s
}

// hints hands each core a shard number of its own. sync.Pool keeps one
// value per P (the scheduler's handle on a core) and gives it back on the
// same P, so a core keeps finding the same hint without any shared write;
// after a garbage collection empties the pool, hints are handed out anew.
type hints struct {
	pool sync.Pool
	next atomic.Uint32
}

type hint struct{ i int }

// get returns this core's hint.
func (h *hints) get() int {
	x, _ := h.pool.Get().(*hint)
	if x == nil {
		x = &hint{i: int(h.next.Add(1) - 1)}
	}
	i := x.i
	h.pool.Put(x)
	return i
}

// shardFor returns the shard a pick on set s counts its request in: the
// calling core's, or 0 when the pool has one shard or s has a capped
// backend.
func (p *Pool) shardFor(s *set) int {
	if p.shards == 1 || s.capped {
		return 0
	}
	if p.hint != nil {
		return p.hint() & (p.shards - 1)
	}
	return p.hints.get() & (p.shards - 1)
}

// WithShards sets the pool's number of shards (rounded up to a power of
// two, at most 16) instead of one per core; 1 makes every pick exact
// pool-wide. Used by tests.
func WithShards(n int) PoolOption { return func(p *Pool) { p.shards = shardsFor(n) } }

// defaultShards is the number of shards of a new pool.
func defaultShards() int { return shardsFor(runtime.GOMAXPROCS(0)) }
