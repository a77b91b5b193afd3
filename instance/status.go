package instance

import (
	_ "embed"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/azimuthproxy/azimuth/discovery"
	"github.com/azimuthproxy/azimuth/health"
	"github.com/azimuthproxy/azimuth/internal/httpjson"
	"github.com/azimuthproxy/azimuth/proxy"
)

// Status is /status's JSON: what the instance runs and how every pool,
// zone and backend stands. The status page draws it.
type Status struct {
	Zone     string `json:"zone"`
	Draining bool   `json:"draining"`
	// Evacuated is set while an operator has evacuated the instance
	// (POST /evacuate): readiness fails, requests are served.
	Evacuated   bool       `json:"evacuated"`
	EvacuatedAt *time.Time `json:"evacuated_at,omitempty"`
	// EvacuatedBy is the name of the admin token that evacuated it.
	EvacuatedBy string `json:"evacuated_by,omitempty"`
	// Overrides are the drains and evacuation in force, where they are
	// kept and whether they are shared through Consul.
	Overrides OverridesStatus  `json:"overrides"`
	Readiness Readiness        `json:"readiness"`
	Config    ConfigStatus     `json:"config"`
	Uptime    string           `json:"uptime"` // since New
	Pools     []PoolStatus     `json:"pools"`
	Listeners []ListenerStatus `json:"listeners"`
	// ACME lists the names each TLS listener's acme block manages.
	ACME []ACMEStatus `json:"acme,omitempty"`
}

// ConfigStatus is the running config and how the last reload went.
type ConfigStatus struct {
	Source        string    `json:"source"`
	Hash          string    `json:"hash"`
	LoadedAt      time.Time `json:"loaded_at"`
	LastReloadOK  bool      `json:"last_reload_ok"`
	LastReloadErr string    `json:"last_reload_error,omitempty"`
}

// PoolStatus is one pool: its settings learned at run time, its request
// counters, zones and backends, and its Consul sync state if Consul feeds
// it.
type PoolStatus struct {
	Name       string           `json:"name"`
	PerTry     PerTry           `json:"per_try"`
	Counts     PoolCounts       `json:"counts"`
	Panic      bool             `json:"panic"`
	SpillRatio float64          `json:"spill_ratio"`
	Zones      []ZoneStatus     `json:"zones"`
	Backends   []BackendStatus  `json:"backends"`
	Retiring   []string         `json:"retiring,omitempty"`
	Consul     *discovery.State `json:"consul,omitempty"`
	// DNS is the pool's backend names and when they last resolved, when
	// its file backends include names.
	DNS *discovery.DNSState `json:"dns,omitempty"`
}

// PerTry is a pool's per-try timeout now: mode auto (learned), fixed or
// off, and its value in seconds (0 when off).
type PerTry struct {
	Mode    string  `json:"mode"`
	Seconds float64 `json:"seconds"`
	// HedgeDelaySeconds is the pool's hedge delay now (hedge block), 0
	// when it has none or has not learned it yet.
	HedgeDelaySeconds float64 `json:"hedge_delay_seconds,omitempty"`
}

// perTryOf reads a pool's per-try timeout for the status and the metrics.
func perTryOf(p *proxy.Pool) PerTry {
	if p == nil {
		return PerTry{Mode: "off"}
	}
	d, auto := p.PerTry()
	pt := PerTry{Mode: "off", HedgeDelaySeconds: p.HedgeDelay().Seconds()}
	switch {
	case auto:
		pt.Mode, pt.Seconds = "auto", d.Seconds()
	case d > 0:
		pt.Mode, pt.Seconds = "fixed", d.Seconds()
	}
	return pt
}

// ZoneStatus is one zone of a pool; Local marks the instance's own.
type ZoneStatus struct {
	Zone         string  `json:"zone"`
	Local        bool    `json:"local"`
	Total        int     `json:"total"`
	Healthy      int     `json:"healthy"`
	HealthyRatio float64 `json:"healthy_ratio"`
	InFlight     int64   `json:"in_flight"`
	Drained      bool    `json:"drained"`
}

// BackendStatus is one backend: its health as the pool's tracker sees it,
// and whether it may take a request now.
type BackendStatus struct {
	health.Info
	Weight    int  `json:"weight"`
	MaxConns  int  `json:"max_conns,omitempty"`
	Available bool `json:"available"`
}

// ListenerStatus is one bound listener.
type ListenerStatus struct {
	Name    string `json:"name"`
	Address string `json:"address"` // bound: a port 0 in the config is resolved
	TLS     bool   `json:"tls"`
}

// ACMEStatus is one TLS listener's managed names (its acme block).
type ACMEStatus struct {
	Listener string     `json:"listener"`
	Names    []ACMEName `json:"names"`
}

// ACMEName is one managed name, with the NotAfter of its certificate;
// null until one is obtained.
type ACMEName struct {
	Name     string     `json:"name"`
	NotAfter *time.Time `json:"not_after"`
}

// Status reports the instance's state now.
func (i *Instance) Status() Status {
	st := Status{Draining: i.draining.Load(), Readiness: i.Ready(), Uptime: time.Since(i.started).Round(time.Second).String()}
	if m := i.evacuated.Load(); m != nil {
		st.Evacuated, st.EvacuatedAt, st.EvacuatedBy = true, &m.At, m.By
	}
	st.Overrides = i.overrides.status()
	if c := i.cfg(); c != nil {
		st.Config = ConfigStatus{Source: c.Source, Hash: c.Hash, LoadedAt: *i.loadedAt.Load()}
		st.Config.LastReloadOK = true
		if e := i.lastErr.Load(); e != nil && *e != "" {
			st.Config.LastReloadOK, st.Config.LastReloadErr = false, *e
		}
	}
	counts, err := countsByPool(i.reg)
	if err != nil {
		i.logger.Warn("status without request counters", "error", err)
	}
	gen := i.server.Current()
	i.mu.Lock()
	defer i.mu.Unlock()
	st.Zone = i.zone // a reload writes it under i.mu
	for _, s := range i.slots {
		st.Listeners = append(st.Listeners, ListenerStatus{Name: s.name, Address: s.bound.String(), TLS: s.tlsSrv != nil})
		if s.acme != nil {
			if names := acmeStatus(s.acme.m.Load()); names != nil {
				st.ACME = append(st.ACME, ACMEStatus{Listener: s.name, Names: names})
			}
		}
	}
	slices.SortFunc(st.Listeners, func(x, y ListenerStatus) int { return strings.Compare(x.Name, y.Name) })
	slices.SortFunc(st.ACME, func(x, y ACMEStatus) int { return strings.Compare(x.Listener, y.Listener) })
	for _, p := range i.registry.Pools() {
		rt := i.pools[p.Name()]
		ps := PoolStatus{Name: p.Name(), Counts: counts[p.Name()], PerTry: PerTry{Mode: "off"}}
		if gen != nil {
			ps.PerTry = perTryOf(gen.Pool(p.Name()))
		}
		bs := p.Status()
		ps.Panic, ps.SpillRatio = bs.Panic, bs.SpillRatio
		for _, z := range bs.Zones {
			ps.Zones = append(ps.Zones, ZoneStatus{Zone: z.Zone, Local: z.Zone == i.zone && i.zone != "", Total: z.Total,
				Healthy: z.Healthy, HealthyRatio: z.HealthyShare(), InFlight: z.InFlight, Drained: z.Drained})
		}
		for _, b := range p.Backends() {
			bst := BackendStatus{Weight: b.Spec().Weight, MaxConns: b.Spec().MaxConns, Available: b.Available()}
			if rt != nil {
				if info, ok := rt.tracker.Info(b.Address()); ok {
					bst.Info = info
				}
			}
			if bst.Address == "" {
				bst.Info = health.Info{Address: b.Address(), Zone: b.Zone(), State: b.State().String(), Drained: b.Drained(), InFlight: b.InFlight()}
			}
			ps.Backends = append(ps.Backends, bst)
		}
		for _, b := range p.Retiring() {
			ps.Retiring = append(ps.Retiring, b.Address())
		}
		if rt != nil && rt.watcher != nil {
			cs := rt.watcher.State()
			ps.Consul = &cs
		}
		if rt != nil && rt.dns != nil {
			ds := rt.dns.State()
			ps.DNS = &ds
		}
		st.Pools = append(st.Pools, ps)
	}
	return st
}

func (i *Instance) serveStatus(w http.ResponseWriter, _ *http.Request) {
	httpjson.WriteIndented(w, http.StatusOK, i.Status())
}

//go:embed statuspage.html
var statusPage []byte

// serveStatusPage serves the HTML status page: it polls /status and draws
// pools, zones and backends with their health. It loads nothing from
// elsewhere, so it works on an isolated admin network.
func (i *Instance) serveStatusPage(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'")
	_, _ = w.Write(statusPage)
}
