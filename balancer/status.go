package balancer

// ZoneStatus is one zone's health in a pool, for the spill and panic rules'
// observers: metrics, the admin status and readiness.
type ZoneStatus struct {
	Zone     string
	Total    int   // backends in the set
	Healthy  int   // backends that may take a request (Available)
	InFlight int64 // requests in flight on the zone's backends
	Drained  bool  // an operator drained the whole zone
}

// HealthyShare returns Healthy/Total, or 0 for an empty zone.
func (z ZoneStatus) HealthyShare() float64 {
	if z.Total == 0 {
		return 0
	}
	return float64(z.Healthy) / float64(z.Total)
}

// Status is a pool's balancing state at one moment.
type Status struct {
	Zones []ZoneStatus
	// Total and Healthy count the pool's backends.
	Total, Healthy int
	// Panic is true when the healthy share is below panic_below, so picks
	// ignore health.
	Panic bool
	// SpillRatio is the share of new requests the local zone sends to other
	// zones because of its health (0 to 1); 0 without a local zone.
	SpillRatio float64
}

// Available reports whether a new request could be served now: some backend
// is available, or the pool is in panic with backends to panic over.
func (s Status) Available() bool { return s.Healthy > 0 || (s.Panic && s.Total > 0) }

// Status computes the pool's zone health, spill and panic state. It scans
// the set, so it is for observers, not the request path.
func (p *Pool) Status() Status {
	s := p.current.Load()
	o := p.opts()
	var st Status
	idx := map[string]int{}
	for _, b := range s.backends {
		z := b.Zone()
		i, ok := idx[z]
		if !ok {
			i = len(st.Zones)
			idx[z] = i
			st.Zones = append(st.Zones, ZoneStatus{Zone: z})
		}
		zs := &st.Zones[i]
		zs.Total++
		zs.InFlight += b.InFlight()
		if b.Available() {
			zs.Healthy++
		}
	}
	p.mu.Lock()
	for i := range st.Zones {
		st.Zones[i].Drained = p.offZones[st.Zones[i].Zone]
	}
	p.mu.Unlock()
	for _, z := range st.Zones {
		st.Total += z.Total
		st.Healthy += z.Healthy
	}
	st.Panic = o.PanicBelow > 0 && float64(st.Healthy) < o.PanicBelow*float64(st.Total)
	if i, ok := idx[o.LocalZone]; ok && o.LocalZone != "" && !st.Panic {
		lz := st.Zones[i]
		st.SpillRatio = 1 - localShare(int64(lz.Healthy), lz.Total, o.SpillBelow)
		if lz.Healthy == 0 {
			st.SpillRatio = 1
		}
	}
	return st
}
