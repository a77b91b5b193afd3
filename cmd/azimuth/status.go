package main

import (
	_ "embed"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/azimuthproxy/azimuth/discovery"
	"github.com/azimuthproxy/azimuth/health"
	"github.com/azimuthproxy/azimuth/proxy"
)

// status is /status's JSON: what the proxy runs and how every pool, zone
// and backend stands.
type status struct {
	Zone     string         `json:"zone"`
	Draining bool           `json:"draining"`
	Ready    readiness      `json:"readiness"`
	Config   configStatus   `json:"config"`
	Uptime   string         `json:"uptime"`
	Pools    []poolStatus   `json:"pools"`
	Listen   []listenStatus `json:"listeners"`
}

type configStatus struct {
	Source        string    `json:"source"`
	Hash          string    `json:"hash"`
	LoadedAt      time.Time `json:"loaded_at"`
	LastReloadOK  bool      `json:"last_reload_ok"`
	LastReloadErr string    `json:"last_reload_error,omitempty"`
}

type poolStatus struct {
	Name       string           `json:"name"`
	PerTry     perTryStatus     `json:"per_try"`
	Counts     poolCounts       `json:"counts"`
	Panic      bool             `json:"panic"`
	SpillRatio float64          `json:"spill_ratio"`
	Zones      []zoneStatus     `json:"zones"`
	Backends   []backendStatus  `json:"backends"`
	Retiring   []string         `json:"retiring,omitempty"`
	Consul     *discovery.State `json:"consul,omitempty"`
}

// perTryStatus is a pool's per-try timeout now: mode auto (learned),
// fixed or off, and its value in seconds (0 when off).
type perTryStatus struct {
	Mode    string  `json:"mode"`
	Seconds float64 `json:"seconds"`
}

// perTryOf reads a pool's per-try timeout for the status and the metrics.
func perTryOf(p *proxy.Pool) perTryStatus {
	if p == nil {
		return perTryStatus{Mode: "off"}
	}
	d, auto := p.PerTry()
	switch {
	case auto:
		return perTryStatus{Mode: "auto", Seconds: d.Seconds()}
	case d > 0:
		return perTryStatus{Mode: "fixed", Seconds: d.Seconds()}
	}
	return perTryStatus{Mode: "off"}
}

type zoneStatus struct {
	Zone         string  `json:"zone"`
	Local        bool    `json:"local"`
	Total        int     `json:"total"`
	Healthy      int     `json:"healthy"`
	HealthyRatio float64 `json:"healthy_ratio"`
	InFlight     int64   `json:"in_flight"`
	Drained      bool    `json:"drained"`
}

type backendStatus struct {
	health.Info
	Weight    int  `json:"weight"`
	MaxConns  int  `json:"max_conns,omitempty"`
	Available bool `json:"available"`
}

type listenStatus struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	TLS     bool   `json:"tls"`
}

func (a *app) status() status {
	st := status{Draining: a.draining.Load(), Ready: a.ready(), Uptime: time.Since(startTime).Round(time.Second).String()}
	if c := a.cfg(); c != nil {
		st.Config = configStatus{Source: c.Source, Hash: c.Hash, LoadedAt: *a.loadedAt.Load()}
		st.Config.LastReloadOK = true
		if e := a.lastErr.Load(); e != nil && *e != "" {
			st.Config.LastReloadOK, st.Config.LastReloadErr = false, *e
		}
	}
	counts, err := countsByPool(a.reg)
	if err != nil {
		a.logger.Warn("status without request counters", "error", err)
	}
	gen := a.server.Current()
	a.mu.Lock()
	defer a.mu.Unlock()
	st.Zone = a.zone // a reload writes it under a.mu
	for _, s := range a.slots {
		st.Listen = append(st.Listen, listenStatus{Name: s.name, Address: s.bound.String(), TLS: s.tlsSrv != nil})
	}
	slices.SortFunc(st.Listen, func(x, y listenStatus) int { return strings.Compare(x.Name, y.Name) })
	for _, p := range a.registry.Pools() {
		rt := a.pools[p.Name()]
		ps := poolStatus{Name: p.Name(), Counts: counts[p.Name()], PerTry: perTryStatus{Mode: "off"}}
		if gen != nil {
			ps.PerTry = perTryOf(gen.Pool(p.Name()))
		}
		bs := p.Status()
		ps.Panic, ps.SpillRatio = bs.Panic, bs.SpillRatio
		for _, z := range bs.Zones {
			ps.Zones = append(ps.Zones, zoneStatus{Zone: z.Zone, Local: z.Zone == a.zone && a.zone != "", Total: z.Total,
				Healthy: z.Healthy, HealthyRatio: z.HealthyShare(), InFlight: z.InFlight, Drained: z.Drained})
		}
		for _, b := range p.Backends() {
			bst := backendStatus{Weight: b.Spec().Weight, MaxConns: b.Spec().MaxConns, Available: b.Available()}
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
		st.Pools = append(st.Pools, ps)
	}
	return st
}

func (a *app) serveStatus(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, a.status())
}

//go:embed statuspage.html
var statusPage []byte

// serveStatusPage serves the HTML status page: it polls /status and draws
// pools, zones and backends with their health. It loads nothing from
// elsewhere, so it works on an isolated admin network.
func (a *app) serveStatusPage(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'")
	_, _ = w.Write(statusPage)
}
