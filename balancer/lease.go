package balancer

// Lease is one request counted on a backend by Pick. Release ends it; it
// must be called exactly once per Lease that Pick returned without error.
// A Lease is a small value: pass it, do not share it.
type Lease struct {
	b     *Backend
	trial bool // the backend's trial request (PickTrial)
}

// Backend returns the backend the request was counted on; nil for the zero
// Lease.
func (l Lease) Backend() *Backend { return l.b }

// Trial reports whether the lease is a backend's trial request.
func (l Lease) Trial() bool { return l.trial }

// Release ends the request: the backend's in-flight count drops, a
// removed backend whose last request ended retires, and a queued request
// may take the freed slot. A trial request without a verdict opens its
// backend's trial again.
func (l Lease) Release() {
	if l.trial {
		l.b.trialReleased()
	}
	l.b.release()
}

// Watch registers w to be told, once, when the lease's backend stops taking
// new requests (ejected, down, drained, or its zone drained) while the
// request is still counted on it. The proxy uses it to move an attempt
// still waiting for its response to another backend at once. Unwatch must
// follow before the lease is released.
func (l Lease) Watch(w *Watch) { l.b.watches.add(w) }

// Unwatch undoes Watch; it does nothing if the watch has fired.
func (l Lease) Unwatch(w *Watch) { l.b.watches.remove(w) }
