package balancer

import (
	"slices"
	"sync"
)

// Registry keeps every pool, and through them every backend's live state,
// across config generations. A reload asks for its pools by name: a pool
// that stays is the same *Pool with new Options, so its backends keep their
// counters; a pool that goes is dropped by Retain. Backends are keyed by
// address inside their pool, because two pools may share a server yet check
// its health differently.
type Registry struct {
	mu    sync.Mutex
	pools map[string]*Pool
	opts  []PoolOption
}

// NewRegistry returns an empty registry whose pools are built with opts.
func NewRegistry(opts ...PoolOption) *Registry {
	return &Registry{pools: map[string]*Pool{}, opts: opts}
}

// Pool returns the pool with the name, configured with o, creating it if
// it does not exist yet.
func (r *Registry) Pool(name string, o Options) *Pool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p, ok := r.pools[name]; ok {
		p.Configure(o)
		return p
	}
	p := NewPool(name, o, r.opts...)
	r.pools[name] = p
	return p
}

// Prepare returns the pool a reload will use under the name: the
// registered one, left as it is, or a new pool with o that nothing sees
// until Commit. A reload that fails after Prepare leaves the registry as
// it was.
func (r *Registry) Prepare(name string, o Options) (p *Pool, existing bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p, ok := r.pools[name]; ok {
		return p, true
	}
	return NewPool(name, o, r.opts...), false
}

// Commit registers p, from Prepare, if it is new, and gives it o.
func (r *Registry) Commit(p *Pool, o Options) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pools[p.name] != p {
		r.pools[p.name] = p
	}
	p.Configure(o)
}

// Lookup returns the pool with the name, or nil.
func (r *Registry) Lookup(name string) *Pool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pools[name]
}

// Pools returns every pool, sorted by name.
func (r *Registry) Pools() []*Pool {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*Pool, 0, len(r.pools))
	for _, p := range r.pools {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b *Pool) int { return compareStrings(a.name, b.name) })
	return out
}

// Retain drops every pool whose name is not in keep and returns the dropped
// ones. Requests in flight on them finish; their backends are not picked by
// the new generation.
func (r *Registry) Retain(keep []string) []*Pool {
	r.mu.Lock()
	defer r.mu.Unlock()
	var gone []*Pool
	for name, p := range r.pools {
		if !slices.Contains(keep, name) {
			gone = append(gone, p)
			delete(r.pools, name)
		}
	}
	return gone
}
