package instance

import (
	"fmt"
	"net/http"

	"github.com/azimuthproxy/azimuth/internal/httpjson"
)

// Readiness is /readyz's answer: Reasons says why it is not ready.
type Readiness struct {
	Ready   bool     `json:"ready"`
	Reasons []string `json:"reasons,omitempty"`
}

// Ready decides readiness, the signal a DNS-failover health check polls:
// ready when a config is running, the instance is not draining, and every
// pool has a backend that can take a request now: up (or pending its first
// checks) and not drained. Panic mode does not count: it spreads load over
// a partly failed pool, but a pool with no healthy backend at all has
// nothing to serve with, and the other region of the pair should take the
// traffic. A pool fed by Consul that has not synced yet counts as not
// ready, with that reason.
func (i *Instance) Ready() Readiness {
	var r Readiness
	if i.draining.Load() {
		r.Reasons = append(r.Reasons, "draining: shutting down")
	}
	if i.cfg() == nil {
		r.Reasons = append(r.Reasons, "no config loaded")
	}
	i.mu.Lock()
	for _, rt := range i.pools {
		if rt.watcher != nil && !rt.watcher.State().Synced && len(rt.pool.Backends()) == 0 {
			r.Reasons = append(r.Reasons, "pool "+rt.name+": waiting for consul ("+rt.watcher.State().LastError+")")
			continue
		}
		if st := rt.pool.Status(); st.Healthy == 0 {
			r.Reasons = append(r.Reasons, fmt.Sprintf("pool %s: no available backend (0 of %d)", rt.name, st.Total))
		}
	}
	i.mu.Unlock()
	r.Ready = len(r.Reasons) == 0
	return r
}

func (i *Instance) serveReady(w http.ResponseWriter, _ *http.Request) {
	r := i.Ready()
	code := http.StatusOK
	if !r.Ready {
		code = http.StatusServiceUnavailable
	}
	httpjson.WriteIndented(w, code, r)
}
