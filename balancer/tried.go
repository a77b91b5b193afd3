package balancer

// maxTried is how many tried backends a Tried remembers; attempts beyond it
// may go back to a backend already tried.
const maxTried = 16

// Tried records the backends one request has already tried, so a retry goes
// elsewhere. It lives on the request's stack: the zero value is empty and it
// allocates nothing.
type Tried struct {
	list [maxTried]*Backend
	n    int
}

// Add records b as tried.
func (t *Tried) Add(b *Backend) {
	if t.n < maxTried {
		t.list[t.n] = b
		t.n++
	}
}

// Len returns the number of backends recorded.
func (t *Tried) Len() int {
	if t == nil {
		return 0
	}
	return t.n
}

// Has reports whether b was tried.
func (t *Tried) Has(b *Backend) bool {
	if t == nil {
		return false
	}
	for _, x := range t.list[:t.n] {
		if x == b {
			return true
		}
	}
	return false
}

// HasZone reports whether a backend of zone was tried.
func (t *Tried) HasZone(zone string) bool {
	if t == nil {
		return false
	}
	for _, x := range t.list[:t.n] {
		if x.Zone() == zone {
			return true
		}
	}
	return false
}
