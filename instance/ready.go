package instance

import (
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/azimuthproxy/azimuth/internal/httpjson"
)

// Readiness is /readyz's answer: Reasons says why it is not ready.
type Readiness struct {
	Ready   bool     `json:"ready"`
	Reasons []string `json:"reasons,omitempty"`
}

// Ready decides readiness, the signal a DNS-failover health check polls:
// ready when a config is running, the instance is neither draining nor
// evacuated by an operator, and every pool that counts (readiness.pools,
// or all) has at least readiness.min_healthy_share of its backends able
// to take a request now (up or pending their first checks, not drained),
// and at least one. Panic mode does not count: it spreads load over a
// partly failed pool, but a pool with no healthy backend at all has
// nothing to serve with, and the other region of the pair should take the
// traffic. A pool fed by Consul that has not synced yet counts as not
// ready, with that reason.
func (i *Instance) Ready() Readiness {
	var r Readiness
	if i.draining.Load() {
		r.Reasons = append(r.Reasons, "draining: shutting down")
	}
	if at := i.evacuated.Load(); at != nil {
		r.Reasons = append(r.Reasons, "evacuated by an operator at "+at.UTC().Format(time.RFC3339)+": POST /restore to serve as ready again")
	}
	i.mu.Lock()
	// Read under mu, as Commit stores the config before it lets go of
	// mu: the config and the pools are of one generation.
	cfg := i.cfg()
	if cfg == nil {
		r.Reasons = append(r.Reasons, "no config loaded")
		i.mu.Unlock()
		r.Ready = false
		return r
	}
	for _, rt := range i.pools {
		if len(cfg.Readiness.Pools) > 0 && !slices.Contains(cfg.Readiness.Pools, rt.name) {
			continue
		}
		if rt.watcher != nil && !rt.watcher.State().Synced && len(rt.pool.Backends()) == 0 {
			r.Reasons = append(r.Reasons, "pool "+rt.name+": waiting for consul ("+rt.watcher.State().LastError+")")
			continue
		}
		st := rt.pool.Status()
		if st.Healthy == 0 {
			r.Reasons = append(r.Reasons, fmt.Sprintf("pool %s: no available backend (0 of %d)", rt.name, st.Total))
			continue
		}
		if min := cfg.Readiness.MinHealthyShare; min > 0 && float64(st.Healthy) < min*float64(st.Total) {
			r.Reasons = append(r.Reasons, fmt.Sprintf("pool %s: %d of %d backends available, below readiness.min_healthy_share %g", rt.name, st.Healthy, st.Total, min))
		}
	}
	i.mu.Unlock()
	r.Ready = len(r.Reasons) == 0
	return r
}

// Evacuate makes readiness fail while the proxy keeps serving every
// request: a planned regional failover, DNS moving clients away before
// the region is touched. It reports false if the instance was already
// evacuated. Restore undoes it. The state lives in this process.
func (i *Instance) Evacuate() bool {
	now := time.Now()
	return i.evacuated.CompareAndSwap(nil, &now)
}

// Restore ends an evacuation; false if there was none.
func (i *Instance) Restore() bool {
	return i.evacuated.Swap(nil) != nil
}

func (i *Instance) serveReady(w http.ResponseWriter, _ *http.Request) {
	r := i.Ready()
	code := http.StatusOK
	if !r.Ready {
		code = http.StatusServiceUnavailable
	}
	httpjson.WriteIndented(w, code, r)
}

// serveEvacuate is POST /evacuate and POST /restore: the state after the
// call, and whether it changed.
func (i *Instance) serveEvacuate(evacuate bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var changed bool
		action := "restore"
		if evacuate {
			changed, action = i.Evacuate(), "evacuate"
		} else {
			changed = i.Restore()
		}
		if changed {
			i.logger.Warn("admin: "+action, "remote", r.RemoteAddr, "readiness", map[bool]string{true: "fails", false: "follows the pools"}[evacuate])
		}
		httpjson.Write(w, http.StatusOK, struct {
			Evacuated bool `json:"evacuated"`
			Changed   bool `json:"changed"`
		}{i.evacuated.Load() != nil, changed})
	}
}
