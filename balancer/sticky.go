package balancer

// Sticky sessions: a client names, in a cookie the proxy set, the backend it
// was last sent to, and goes back there while that backend can take it.
// The cookie carries the backend's pin, a 64-bit hash of its address: it
// reveals nothing of the address, it is the same on every proxy of a fleet
// and across restarts (so a client keeps its backend whichever proxy it
// reaches), and a forged or stale value simply matches no backend.

// pinOf is the sticky token of an address: FNV-1a, then a 64-bit mixer so
// that similar addresses give unrelated tokens. Never 0 (Key.Pin's "none").
func pinOf(addr string) uint64 {
	h := fnv64(addr)
	if h == 0 {
		return 1
	}
	return h
}

// fnv64 is FNV-1a of s followed by the splitmix64 finalizer.
func fnv64(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return mix64(h)
}

// mix64 is splitmix64's finalizer: every input bit moves every output bit.
func mix64(z uint64) uint64 {
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// Pin returns the backend's sticky token, what the sticky cookie carries.
func (b *Backend) Pin() uint64 { return b.pin }

// pinned returns the entry of the backend pinned by token if it may take
// the request now (available, not tried, below its max_conns), else nil.
// Zone preference does not apply: a pinned client stays where it is.
func (c *pickCtx) pinned(token uint64) *entry {
	i, ok := c.s.pins[token]
	if !ok {
		return nil
	}
	e := &c.s.entries[i]
	if _, ok := c.candidate(e, false); !ok {
		return nil
	}
	return e
}

// HashKey hashes a request's key (a header or cookie value, a client
// address) for Key.Hash: the same function on every proxy, so a fleet
// sends a key to the same backend.
func HashKey(s string) uint64 { return fnv64(s) }
