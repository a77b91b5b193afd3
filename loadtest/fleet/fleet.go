// Package fleet starts zone-tagged HTTP backends on loopback and makes them
// misbehave on demand, for load tests that play out zone outages. Zone z
// (from 1) lives on 127.0.z.0/24: backend n of zone z listens on 127.0.z.n.
//
// Backends also record what they saw, so a test can judge the proxy in
// front of them from the far side: the arrival time of every request
// (health checks, to HealthPath, apart) per 10 ms, and across the fleet
// how many times each request ID arrived, per method. A request to
// SleepPath (/sleep?d=5s) is slow on purpose.
package fleet

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// Options describes a fleet.
type Options struct {
	// Zones names the zones, in address order.
	Zones []string
	// PerZone is the number of backends in each zone.
	PerZone int
	// Latency is every backend's service time.
	Latency Latency
	// Seed seeds the latency jitter, so runs are repeatable.
	Seed uint64
	// IDHeader, when set, names the header carrying each request's unique
	// ID (azload's Options.IDHeader): the fleet counts, per method, how
	// many times each ID arrived, so a request delivered twice shows.
	IDHeader string
}

// Fleet is a set of running backends.
type Fleet struct {
	backends []*Backend
	ids      *deliveries
}

// Start starts the fleet; on error, whatever started is stopped.
func Start(o Options) (*Fleet, error) {
	if len(o.Zones) == 0 || len(o.Zones) > 250 {
		return nil, fmt.Errorf("fleet zones: want 1 to 250, got %d", len(o.Zones))
	}
	if o.PerZone < 1 || o.PerZone > 250 {
		return nil, fmt.Errorf("fleet backends per zone: want 1 to 250, got %d", o.PerZone)
	}
	f := &Fleet{ids: newDeliveries()}
	sh := shared{epoch: time.Now(), ids: f.ids, idHeader: o.IDHeader}
	seen := map[string]bool{}
	for zi, zone := range o.Zones {
		if zone == "" || seen[zone] {
			_ = f.Close()
			return nil, fmt.Errorf("fleet zone %d: name %q is empty or repeated", zi+1, zone)
		}
		seen[zone] = true
		for n := 1; n <= o.PerZone; n++ {
			rng := rand.New(rand.NewPCG(o.Seed, uint64(zi<<8|n)))
			b, err := newBackend(fmt.Sprintf("%s-%d", zone, n), zone, fmt.Sprintf("127.0.%d.%d", zi+1, n), o.Latency, rng, sh)
			if err != nil {
				_ = f.Close()
				return nil, fmt.Errorf("starting fleet: %w", err)
			}
			f.backends = append(f.backends, b)
		}
	}
	return f, nil
}

// Backends returns every backend, zone by zone.
func (f *Fleet) Backends() []*Backend { return f.backends }

// Zone returns the backends of zone.
func (f *Fleet) Zone(zone string) []*Backend {
	var out []*Backend
	for _, b := range f.backends {
		if b.Zone == zone {
			out = append(out, b)
		}
	}
	return out
}

// Backend returns the backend named name, or nil.
func (f *Fleet) Backend(name string) *Backend {
	for _, b := range f.backends {
		if b.Name == name {
			return b
		}
	}
	return nil
}

// ApplyZone puts fault in force on every backend of zone.
func (f *Fleet) ApplyZone(zone string, fault Fault) error {
	bs := f.Zone(zone)
	if len(bs) == 0 {
		return fmt.Errorf("applying %s: no zone %q", fault, zone)
	}
	var errs []error
	for _, b := range bs {
		errs = append(errs, b.Apply(fault))
	}
	return errors.Join(errs...)
}

// ApplyBackend puts fault in force on the backend named name.
func (f *Fleet) ApplyBackend(name string, fault Fault) error {
	b := f.Backend(name)
	if b == nil {
		return fmt.Errorf("applying %s: no backend %q", fault, name)
	}
	return b.Apply(fault)
}

// Requests is the number of requests the fleet received, health checks
// excepted.
func (f *Fleet) Requests() int64 {
	var n int64
	for _, b := range f.backends {
		n += b.Requests()
	}
	return n
}

// HitsBetween is the number of requests, health checks excepted, that
// arrived at any of backends in [from, to) (see Backend.HitsBetween).
func HitsBetween(backends []*Backend, from, to time.Time) int64 {
	var n int64
	for _, b := range backends {
		n += b.HitsBetween(from, to)
	}
	return n
}

// Deliveries returns, per method, how the fleet received the requests
// that carried an ID in Options.IDHeader: distinct IDs, IDs received more
// than once, and the arrivals beyond each first. It is empty without an
// IDHeader.
func (f *Fleet) Deliveries() map[string]Delivery { return f.ids.snapshot() }

// KeyCount is how many requests carrying key (X-Request-Id or
// Idempotency-Key) the fleet received, over all backends.
func (f *Fleet) KeyCount(key string) int64 {
	var n int64
	for _, b := range f.backends {
		n += b.KeyCount(key)
	}
	return n
}

// Keys sums, over the fleet, how many requests carried each X-Request-Id
// or Idempotency-Key value: a value counted twice was delivered twice,
// perhaps to two backends.
func (f *Fleet) Keys() map[string]int64 {
	out := map[string]int64{}
	for _, b := range f.backends {
		for k, n := range b.Keys() {
			out[k] += n
		}
	}
	return out
}

// Close stops every backend and waits for their goroutines.
func (f *Fleet) Close() error {
	var errs []error
	for _, b := range f.backends {
		errs = append(errs, b.Close())
	}
	return errors.Join(errs...)
}
