// Package balancer decides, for every attempt of a request, which backend
// gets it: a preference for the proxy's own zone that spills to the others
// as that zone loses health or capacity, a panic mode for when health
// checks cannot be trusted, and inside the zone chosen the pool's policy
// (weighted least-connections by default; round robin, random, two
// choices or consistent hashing: policy.go), a sticky pin that keeps a
// client on its backend (sticky.go), slow start and a bounded wait queue.
// It does no I/O and imports nothing of ours, so health, discovery and
// the proxy all build on it.
//
// The request path (Pick, Release) takes no lock and allocates nothing
// unless it has to queue. It reads an immutable set of backends sorted by
// zone, per-zone health tallies that writers keep exact, and each
// backend's atomics, among them one exact in-flight count that every
// core's picks compare and write (least-conn is exact, not per core:
// docs/decisions/0015-exact-least-connections.md); it scans only the zone
// it chose, and samples two backends instead of scanning when that zone
// is large (least-conn).
// Writers (Update, SetState, drains) are rare and serialise on the pool's
// lock.
package balancer

// Spec is what the config file or discovery says about one backend: the
// static half of a Backend. Live state (in-flight count, health, drain, slow
// start) is not here; it lives on the Backend and survives every new Spec.
type Spec struct {
	// Address is host:port, and the backend's identity inside its pool.
	Address string
	// Zone is the availability zone the backend runs in; "" if unknown.
	Zone string
	// Weight scales the backend's share of traffic; values below 1 count as 1.
	Weight int
	// MaxConns caps the backend's concurrent requests; 0 means no cap.
	MaxConns int
}

// String returns "address (zone)", for logs.
func (s Spec) String() string {
	if s.Zone == "" {
		return s.Address
	}
	return s.Address + " (" + s.Zone + ")"
}

// weight returns the weight with its floor of 1 applied.
func (s Spec) weight() int {
	if s.Weight < 1 {
		return 1
	}
	return s.Weight
}
