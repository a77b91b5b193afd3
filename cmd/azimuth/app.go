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

	// planFault, set by tests only, fails a reload's plan at the named
	// step ("pools", "listeners", "generation"), as a step that can fail
	// would: a reload that fails late must leave nothing behind.
	planFault func(step string) error
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

// generationPlan is a reload prepared by plan: every step that can fail
// has run, nothing the running proxy serves has changed, and commit
// cannot fail.
type generationPlan struct {
	cfg        *configs.Config
	consul     *api.Client
	consulOpts discovery.Options
	pools      []*poolPlan
	next       map[string]*slot // every listener of the new config, by address
	opened     map[string]*slot // those bound for it, not serving yet
	gen        *proxy.Generation
}

// apply makes cfg the running config: plan, then commit. A plan that fails
// leaves the running config, its pools, listeners and goroutines as they
// were, and closes what it opened.
func (a *app) apply(cfg *configs.Config) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	p, err := a.plan(cfg)
	if err != nil {
		return err
	}
	a.commit(p)
	return nil
}

// plan does every step of a reload that can fail: the Consul client,
// each pool's transport, TLS files and health settings, binding new
// sockets, and building the request path's generation. Pools it makes are
// not registered and run nothing yet. The caller holds a.mu.
func (a *app) plan(cfg *configs.Config) (_ *generationPlan, err error) {
	p := &generationPlan{cfg: cfg, next: map[string]*slot{}, opened: map[string]*slot{}}
	defer func() {
		if err != nil {
			for _, s := range p.opened {
				a.retireSlot(s, nil)
			}
		}
	}()
	if p.consul, p.consulOpts, err = a.planConsul(cfg); err != nil {
		return nil, err
	}
	for i := range cfg.Pools {
		pp, err := a.planPool(&cfg.Pools[i], cfg.Zone, p.consul, p.consulOpts)
		if err != nil {
			return nil, err
		}
		p.pools = append(p.pools, pp)
	}
	if err := a.fault("pools"); err != nil {
		return nil, err
	}
	for i := range cfg.Listeners {
		l := &cfg.Listeners[i]
		if s := a.slots[l.Address]; s != nil && s.binding == bindingOf(l) {
			p.next[l.Address] = s
			continue
		}
		s, err := a.openSlot(l, a.slots[l.Address])
		if err != nil {
			return nil, err
		}
		p.opened[l.Address], p.next[l.Address] = s, s
	}
	if err := a.fault("listeners"); err != nil {
		return nil, err
	}
	pcs := make([]proxy.PoolConfig, 0, len(p.pools))
	for _, pp := range p.pools {
		c := pp.cfg
		var outlier proxy.Observer
		if pp.rt != nil {
			outlier = pp.rt.detector
		} else {
			outlier = pp.detector
		}
		pcs = append(pcs, proxy.PoolConfig{
			Name: c.Name, Balancer: pp.bal, Transport: pp.transport, Scheme: scheme(c),
			Timeouts: timeouts(c), Retry: retryPolicy(c), Outlier: outlier,
			FailStatuses: c.Health.Passive.Statuses,
		})
	}
	lcs := make([]proxy.ListenerConfig, 0, len(cfg.Listeners))
	for i := range cfg.Listeners {
		lcs = append(lcs, listenerConfig(&cfg.Listeners[i]))
	}
	if p.gen, err = a.server.Build(proxy.Config{Listeners: lcs, Pools: pcs}); err != nil {
		return nil, err
	}
	if err := a.fault("generation"); err != nil {
		a.server.Discard(p.gen)
		return nil, err
	}
	return p, nil
}

// fault is the test seam of plan (see planFault).
func (a *app) fault(step string) error {
	if a.planFault == nil {
		return nil
	}
	return a.planFault(step)
}

// commit makes a plan the running config: pools take their settings and
// start what they run, the generation is published, listeners get their
// handlers and new ones start serving, and what the config no longer has
// is retired. Nothing in it can fail. The caller holds a.mu.
func (a *app) commit(p *generationPlan) {
	cfg := p.cfg
	a.zone = cfg.Zone
	a.consul, a.consulOptions = p.consul, p.consulOpts
	runtimes := map[string]*poolRuntime{}
	for _, pp := range p.pools {
		rt := a.commitPool(pp)
		runtimes[rt.name] = rt
	}
	a.server.Publish(p.gen)
	for i := range cfg.Listeners {
		l := &cfg.Listeners[i]
		p.next[l.Address].name = l.Name
		p.next[l.Address].handler.set(a.listenerHandler(l, cfg, p.next))
	}
	for _, s := range p.opened {
		s.serve()
	}
	for addr, s := range a.slots {
		if next := p.next[addr]; next != s {
			a.retireSlot(s, next) // next is nil when the listener left
		}
	}
	for name, rt := range a.pools {
		if runtimes[name] == nil {
			rt.stop()
		}
	}
	a.registry.Retain(slices.Collect(maps.Keys(runtimes)))
	a.logChanges(cfg, runtimes, p.next)
	a.pools, a.slots = runtimes, p.next
	a.current.Store(cfg)
	now := time.Now()
	a.loadedAt.Store(&now)
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
