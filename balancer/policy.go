package balancer

// Policy is how a pick chooses among the candidates of the range it settled
// on (a zone, or the whole set in panic or without zone preference). Zone
// choice, spill, panic, retries to another zone, health, drains, max_conns
// and slow start are the pool's, the same under every policy: a policy only
// replaces the last step, the choice inside the range.
type Policy uint8

const (
	// PolicyLeastConn: the fewest in-flight requests per unit of weight
	// (leastconn.go). The default.
	PolicyLeastConn Policy = iota
	// PolicyRoundRobin: smooth weighted round robin (roundrobin.go).
	PolicyRoundRobin
	// PolicyRandom: a random candidate, in proportion to weight (random.go).
	PolicyRandom
	// PolicyP2C: two candidates drawn in proportion to weight; the one
	// with fewer in-flight requests wins (random.go).
	PolicyP2C
	// PolicyHash: consistent hashing of the request's Key.Hash over a
	// Maglev table (maglev.go); a request without a hash falls back to
	// least-conn.
	PolicyHash
)

var policyNames = [...]string{"least_conn", "round_robin", "random", "p2c", "hash"}

// String returns the policy's config name.
func (p Policy) String() string {
	if int(p) < len(policyNames) {
		return policyNames[p]
	}
	return "unknown"
}

// Key is what a request brings to its pick besides the backends it tried.
// The proxy computes it from the request (see Affinity); a zero Key, or a
// nil one, asks for nothing.
type Key struct {
	// Hash is the request's hash key, read by PolicyHash when HasHash.
	Hash    uint64
	HasHash bool
	// Pin is the sticky token (Backend.Pin) of the backend the request is
	// pinned to; 0 for none. A first attempt goes to that backend while it
	// is available and below its max_conns, whatever the zone; a retry
	// ignores it and leaves for another zone as any retry does.
	Pin uint64
}

// within is the pool's policy applied to entries[lo:hi]: the candidate
// that gets the pick, or nil if none may take it. anyState admits
// backends whatever their health (panic); drained, removed and tried
// backends and those at max_conns never qualify (see pickCtx.candidate).
// Least-conn, the default, costs a comparison and a call more than
// before there were policies; the others go through otherPolicy.
func (c *pickCtx) within(lo, hi int, anyState bool) *entry {
	if c.policy == PolicyLeastConn {
		return c.leastConn(lo, hi, anyState)
	}
	return c.otherPolicy(lo, hi, anyState)
}

// otherPolicy dispatches the policies but least-conn. A switch, not an
// interface of policies: a *pickCtx passed through an interface method
// escapes, and every pick would then allocate its context on the heap
// (TestPickDoesNotAllocate, TestPolicyPicksDoNotAllocate).
func (c *pickCtx) otherPolicy(lo, hi int, anyState bool) *entry {
	switch c.policy {
	case PolicyRoundRobin:
		return c.roundRobin(lo, hi, anyState)
	case PolicyRandom:
		return c.random(lo, hi, anyState)
	case PolicyP2C:
		return c.p2c(lo, hi, anyState)
	case PolicyHash:
		return c.hashed(lo, hi, anyState)
	}
	return c.leastConn(lo, hi, anyState)
}
