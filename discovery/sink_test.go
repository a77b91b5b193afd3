package discovery

import (
	"slices"
	"sync"

	"github.com/azimuthproxy/azimuth/balancer"
)

// recorder is a Sink that keeps every update, for tests.
type recorder struct {
	mu      sync.Mutex
	updates [][]balancer.Spec
	notify  chan struct{}
}

func newRecorder() *recorder { return &recorder{notify: make(chan struct{}, 1)} }

func (r *recorder) Update(specs []balancer.Spec) {
	r.mu.Lock()
	r.updates = append(r.updates, slices.Clone(specs))
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

// all returns a copy of every update so far.
func (r *recorder) all() [][]balancer.Spec {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.updates)
}

// count returns how many updates arrived.
func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.updates)
}

// last returns the latest update and whether there was one.
func (r *recorder) last() ([]balancer.Spec, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.updates) == 0 {
		return nil, false
	}
	return r.updates[len(r.updates)-1], true
}
