package instance

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/azimuthproxy/azimuth/discovery"
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
	if m := i.evacuated.Load(); m != nil {
		r.Reasons = append(r.Reasons, "evacuated by an operator ("+m.By+") at "+m.At.UTC().Format(time.RFC3339)+": POST /restore to serve as ready again")
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
// the region is touched. by names who asked (the admin token's name).
// With Consul sharing the evacuation is the region's: every proxy
// watching the prefix fails its readiness too. It is kept in the state
// file, so it outlives a restart. changed is false if the instance was
// already evacuated; err says the evacuation could not be kept or shared,
// and applies to this proxy only. Restore undoes it.
func (i *Instance) Evacuate(ctx context.Context, by string) (changed bool, err error) {
	return i.evacuate(ctx, true, i.overrides.markBy(by))
}

// Restore ends an evacuation, as Evacuate began it.
func (i *Instance) Restore(ctx context.Context, by string) (changed bool, err error) {
	return i.evacuate(ctx, false, i.overrides.markBy(by))
}

func (i *Instance) evacuate(ctx context.Context, on bool, m discovery.Mark) (bool, error) {
	var changed bool
	err := i.overrides.keep(ctx, discovery.OverrideKey{Kind: discovery.Evacuation}, on, m, func() { changed = i.setEvacuated(on, m) })
	return changed, err
}

// setEvacuated evacuates (on) or restores the instance here; it reports
// whether that changed anything.
func (i *Instance) setEvacuated(on bool, m discovery.Mark) bool {
	if on {
		return i.evacuated.CompareAndSwap(nil, &m)
	}
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
// call, and whether it changed; 503 with the error when it could not be
// kept or shared (it applies to this proxy all the same).
func (i *Instance) serveEvacuate(evacuate bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		m := i.overrides.mark(r)
		changed, err := i.evacuate(r.Context(), evacuate, m)
		if changed {
			action := map[bool]string{true: "evacuate", false: "restore"}[evacuate]
			i.logger.Warn("admin: "+action, "remote", r.RemoteAddr, "token", m.By, "readiness", map[bool]string{true: "fails", false: "follows the pools"}[evacuate])
		}
		code, msg := http.StatusOK, ""
		if err != nil {
			code, msg = http.StatusServiceUnavailable, "applies to this proxy only: "+err.Error()
		}
		httpjson.Write(w, code, struct {
			Evacuated bool   `json:"evacuated"`
			Changed   bool   `json:"changed"`
			Error     string `json:"error,omitempty"`
		}{i.evacuated.Load() != nil, changed, msg})
	}
}
