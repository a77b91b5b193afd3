package balancer

// Lease is one request counted on a backend by Pick. Release ends it; it
// must be called exactly once per Lease that Pick returned without error.
// A Lease is a small value: pass it, do not share it.
type Lease struct {
	b     *Backend
	shard int
}

// Backend returns the backend the request was counted on; nil for the zero
// Lease.
func (l Lease) Backend() *Backend { return l.b }

// Release ends the request: the backend's in-flight count drops, a
// removed backend whose last request ended retires, and a queued request
// may take the freed slot.
func (l Lease) Release() { l.b.release(l.shard) }
