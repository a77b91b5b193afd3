package main

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/azimuthproxy/azimuth/balancer"
	"github.com/azimuthproxy/azimuth/configs"
	"github.com/azimuthproxy/azimuth/discovery"
	"github.com/azimuthproxy/azimuth/health"
	"github.com/azimuthproxy/azimuth/proxy"
	edgetls "github.com/azimuthproxy/azimuth/tls"
	"github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus"
)

// app is the running proxy: the current config, the pools' runtimes, the
// bound listeners and the request path. Reloads are serialised by mu; the
// request path never takes it.
type app struct {
	ctx    context.Context
	logger *slog.Logger
	reg    *prometheus.Registry
	zone   string

	registry      *balancer.Registry
	server        *proxy.Server
	healthMetrics *health.Metrics
	tlsMetrics    *edgetls.Metrics
	consulMetrics prometheus.Registerer
	reloads       *reloadMetrics

	current  atomic.Pointer[configs.Config]
	loadedAt atomic.Pointer[time.Time]
	lastErr  atomic.Pointer[string]
	draining atomic.Bool

	mu            sync.Mutex
	pools         map[string]*poolRuntime
	slots         map[string]*slot // by address
	consul        *api.Client
	consulOptions discovery.Options

	bg sync.WaitGroup // listeners being retired
}

func (a *app) cfg() *configs.Config { return a.current.Load() }

// newApp builds an app with no config applied. ctx owns every goroutine.
func newApp(ctx context.Context, logger *slog.Logger, access *proxy.AccessLog) (*app, error) {
	reg := prometheus.NewRegistry()
	hm, err := health.NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	tm, err := edgetls.NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	a := &app{
		ctx: ctx, logger: logger, reg: reg, tlsMetrics: tm,
		registry:      balancer.NewRegistry(),
		healthMetrics: hm,
		consulMetrics: reg,
		pools:         map[string]*poolRuntime{},
		slots:         map[string]*slot{},
	}
	a.server = proxy.NewServer(ctx, proxy.Options{Logger: logger, Metrics: proxy.NewMetrics(reg), AccessLog: access})
	a.reloads = newReloadMetrics(reg)
	registerRuntimeMetrics(reg, a)
	return a, nil
}

// apply makes cfg the running config. Everything that can fail (TLS files,
// binding new sockets, backend TLS) is prepared first; if any of it fails,
// what was prepared is closed and the running config is untouched. Then
// pools are configured, the generation published, and what left retired.
func (a *app) apply(cfg *configs.Config) (err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	zone := cfg.Zone

	// Prepare.
	plans := make([]*poolPlan, 0, len(cfg.Pools))
	for i := range cfg.Pools {
		p := &cfg.Pools[i]
		plan, err := planPool(p, a.pools[p.Name])
		if err != nil {
			return err
		}
		plans = append(plans, plan)
	}
	consul, consulOpts, err := a.planConsul(cfg)
	if err != nil {
		return err
	}
	opened := map[string]*slot{}
	defer func() {
		if err != nil {
			for _, s := range opened {
				a.retireSlot(s)
			}
		}
	}()
	next := map[string]*slot{}
	for i := range cfg.Listeners {
		l := &cfg.Listeners[i]
		if s := a.slots[l.Address]; s != nil && s.binding == bindingOf(l) {
			next[l.Address] = s
			continue
		}
		s, err := a.openSlot(l, a.slots[l.Address])
		if err != nil {
			return err
		}
		opened[l.Address], next[l.Address] = s, s
	}

	// Commit.
	a.zone = zone
	a.consul, a.consulOptions = consul, consulOpts
	pcs := make([]proxy.PoolConfig, 0, len(plans))
	runtimes := map[string]*poolRuntime{}
	for _, plan := range plans {
		rt, err := a.applyPool(plan)
		if err != nil {
			return err
		}
		runtimes[rt.name] = rt
		p := plan.cfg
		pcs = append(pcs, proxy.PoolConfig{
			Name: p.Name, Balancer: rt.pool, Transport: rt.transport, Scheme: scheme(p),
			Timeouts: timeouts(p), Retry: retryPolicy(p), Outlier: rt.detector,
			FailStatuses: p.Health.Passive.Statuses,
		})
	}
	var lcs []proxy.ListenerConfig
	for i := range cfg.Listeners {
		lcs = append(lcs, listenerConfig(&cfg.Listeners[i]))
	}
	gen, err := a.server.Build(proxy.Config{Listeners: lcs, Pools: pcs})
	if err != nil {
		return err
	}
	a.server.Publish(gen)
	for i := range cfg.Listeners {
		l := &cfg.Listeners[i]
		next[l.Address].name = l.Name
		next[l.Address].handler.set(a.listenerHandler(l, cfg, next))
	}
	for _, s := range opened {
		s.serve()
	}
	for addr, s := range a.slots {
		if next[addr] != s {
			a.retireSlot(s)
		}
	}
	for name, rt := range a.pools {
		if runtimes[name] == nil {
			rt.stop()
		}
	}
	a.registry.Retain(slices.Collect(maps.Keys(runtimes)))
	a.logChanges(cfg, runtimes, next)
	a.pools, a.slots = runtimes, next
	a.current.Store(cfg)
	now := time.Now()
	a.loadedAt.Store(&now)
	opened = nil
	return nil
}

// planConsul returns the Consul client the config needs, reusing the
// running one when its settings are unchanged.
func (a *app) planConsul(cfg *configs.Config) (*api.Client, discovery.Options, error) {
	if cfg.Consul == nil {
		return nil, discovery.Options{}, nil
	}
	c := cfg.Consul
	token, err := discovery.LoadToken(c.TokenFile, os.Getenv)
	if err != nil {
		return nil, discovery.Options{}, fmt.Errorf("consul: %w", err)
	}
	o := discovery.Options{Address: c.Address, Datacenter: c.Datacenter, Token: token}
	if c.TLS != nil {
		o.TLS = discovery.TLSOptions{CAFile: c.TLS.CAFile, CertFile: c.TLS.CertFile, KeyFile: c.TLS.KeyFile, ServerName: c.TLS.ServerName}
	}
	if a.consul != nil && o == a.consulOptions {
		return a.consul, o, nil
	}
	client, err := discovery.NewClient(o)
	if err != nil {
		return nil, discovery.Options{}, fmt.Errorf("consul: %w", err)
	}
	return client, o, nil
}

func listenerConfig(l *configs.Listener) proxy.ListenerConfig {
	lc := proxy.ListenerConfig{Name: l.Name, TrustedProxies: l.TrustedPrefixes(), MaxBody: l.Limits.MaxBody.Bytes()}
	for _, r := range l.Routes {
		lc.Routes = append(lc.Routes, proxy.Route{Host: r.Host, PathPrefix: r.PathPrefix, Pool: r.Pool})
	}
	if l.TLS != nil && l.TLS.ClientAuth != configs.ClientAuthNone && l.TLS.ClientAuth != "" {
		lc.ClientSubjectHeader = l.TLS.ClientSubjectHeader
		lc.ClientSubject = func(r *http.Request) string { s, _ := edgetls.ClientSubject(r); return s }
	} else if l.TLS != nil {
		lc.ClientSubjectHeader = l.TLS.ClientSubjectHeader // still strip a client's copy
	}
	return lc
}

// listenerHandler is what a listener serves in this generation.
func (a *app) listenerHandler(l *configs.Listener, cfg *configs.Config, slots map[string]*slot) http.Handler {
	if l.RedirectHTTPS {
		port := 443
		for _, other := range cfg.Listeners {
			if other.Name == l.RedirectTo {
				port = slots[other.Address].port()
			}
		}
		return edgetls.RedirectHTTPS(port)
	}
	return a.server.Handler(l.Name)
}

// logChanges says what a reload changed.
func (a *app) logChanges(cfg *configs.Config, pools map[string]*poolRuntime, slots map[string]*slot) {
	var added, removed, lAdded, lRemoved []string
	for n := range pools {
		if a.pools[n] == nil {
			added = append(added, n)
		}
	}
	for n := range a.pools {
		if pools[n] == nil {
			removed = append(removed, n)
		}
	}
	for addr, s := range slots {
		if a.slots[addr] != s {
			lAdded = append(lAdded, s.name+"@"+addr)
		}
	}
	for addr, s := range a.slots {
		if slots[addr] != s {
			lRemoved = append(lRemoved, s.name+"@"+addr)
		}
	}
	a.logger.Info("config applied", "source", cfg.Source, "hash", cfg.Hash,
		"pools_added", added, "pools_removed", removed, "listeners_opened", lAdded, "listeners_closed", lRemoved)
}
