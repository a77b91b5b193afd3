package instance

import (
	"errors"
	"fmt"
	"net/http"
	"os"

	"github.com/azimuthproxy/azimuth/configs"
	"github.com/azimuthproxy/azimuth/discovery"
	"github.com/azimuthproxy/azimuth/proxy"
	edgetls "github.com/azimuthproxy/azimuth/tls"
	"github.com/hashicorp/consul/api"
)

// Plan is a reload prepared by Instance.Plan: every step that can fail has
// run, and nothing the instance serves has changed. It goes to Commit or
// Discard, once; until then no other reload starts.
type Plan struct {
	cfg        *configs.Config
	consul     *api.Client
	consulOpts discovery.Options
	pools      []*poolPlan
	next       map[string]*slot // every listener of the new config, by address
	opened     map[string]*slot // those bound for it, not serving yet
	acme       []acmePlan       // ACME managers for new or changed acme blocks
	gen        *proxy.Generation
	admin      adminPlan
	overrides  overridesPlan
}

// errDraining refuses a plan once Drain began: nothing would serve it.
var errDraining = errors.New("draining: no config is applied any more")

// Plan does every step of a reload to cfg that can fail: the Consul
// client, each pool's transport, TLS files and health settings, binding
// new sockets, and building the request path's generation. Pools it makes
// are not registered and run nothing yet; sockets it binds accept nothing
// yet. On error nothing of cfg is left, the running config is as it was,
// and /status and the reload metrics report the failure.
func (i *Instance) Plan(cfg *configs.Config) (*Plan, error) {
	i.reloading.Lock()
	p := &Plan{cfg: cfg, next: map[string]*slot{}, opened: map[string]*slot{}}
	err := errDraining
	if !i.draining.Load() {
		err = i.plan(p)
	}
	if err != nil {
		i.discard(p)
		i.recordReload(err)
		i.reloading.Unlock()
		return nil, err
	}
	return p, nil
}

// plan fills p, stopping at the first step that fails; the caller
// discards what it made.
func (i *Instance) plan(p *Plan) (err error) {
	cfg := p.cfg
	if p.consul, p.consulOpts, err = i.planConsul(cfg); err != nil {
		return err
	}
	p.overrides = i.overrides.plan(cfg, p.consul)
	for j := range cfg.Pools {
		pp, err := i.planPool(&cfg.Pools[j], cfg.Zone, p.consul, p.consulOpts)
		if err != nil {
			return err
		}
		p.pools = append(p.pools, pp)
	}
	if err := i.fault("pools"); err != nil {
		return err
	}
	for j := range cfg.Listeners {
		l := &cfg.Listeners[j]
		if s := i.slots[l.Address]; s != nil && s.binding == bindingOf(l) {
			p.next[l.Address] = s
			continue
		}
		s, err := i.openSlot(l, i.slots[l.Address])
		if err != nil {
			return err
		}
		p.opened[l.Address], p.next[l.Address] = s, s
	}
	if err := i.fault("listeners"); err != nil {
		return err
	}
	if err := i.planACME(p); err != nil {
		return err
	}
	if p.admin, err = i.planAdmin(cfg); err != nil {
		return err
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
			FailStatuses: c.Health.Passive.Statuses, Backup: c.BackupPool,
			Hedge: hedge(c),
		})
	}
	lcs := make([]proxy.ListenerConfig, 0, len(cfg.Listeners))
	for j := range cfg.Listeners {
		lcs = append(lcs, listenerConfig(&cfg.Listeners[j]))
	}
	if p.gen, err = i.server.Build(proxy.Config{Listeners: lcs, Pools: pcs}); err != nil {
		return err
	}
	return i.fault("generation")
}

// fault is the test seam of plan (see planFault).
func (i *Instance) fault(step string) error {
	if i.planFault == nil {
		return nil
	}
	return i.planFault(step)
}

// planConsul returns the Consul client the config needs, reusing the
// running one when its settings are unchanged.
func (i *Instance) planConsul(cfg *configs.Config) (*api.Client, discovery.Options, error) {
	if cfg.Consul == nil {
		return nil, discovery.Options{}, nil
	}
	c := cfg.Consul
	token, err := discovery.LoadToken(c.TokenFile, os.Getenv)
	if err != nil {
		return nil, discovery.Options{}, fmt.Errorf("consul: %w", err)
	}
	o := discovery.Options{Address: c.Address, Datacenter: c.Datacenter, Token: token, CacheDir: c.CacheDir}
	if c.TLS != nil {
		o.TLS = discovery.TLSOptions{CAFile: c.TLS.CAFile, CertFile: c.TLS.CertFile, KeyFile: c.TLS.KeyFile, ServerName: c.TLS.ServerName}
	}
	if i.consul != nil && o == i.consulOptions {
		return i.consul, o, nil
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
		rt := proxy.Route{
			Host: r.Host, PathPrefix: r.PathPrefix, Pool: r.Pool, Name: r.RouteName(),
			StripPrefix: r.Rewrite.StripPrefix, ReplacePrefix: r.Rewrite.ReplacePrefix, HostRewrite: r.Rewrite.Host,
			RequestHeaders:  proxy.HeaderRules(r.RequestHeaders),
			ResponseHeaders: proxy.HeaderRules(r.ResponseHeaders),
		}
		if rl := r.RateLimit; rl != nil {
			rt.RateLimit = &proxy.RateLimit{Rate: rl.Rate, Burst: rl.Burst, Key: rl.Key, MaxKeys: rl.MaxKeys}
		}
		lc.Routes = append(lc.Routes, rt)
	}
	if l.TLS != nil && l.TLS.ClientAuth != configs.ClientAuthNone && l.TLS.ClientAuth != "" {
		lc.ClientSubjectHeader = l.TLS.ClientSubjectHeader
		lc.ClientSubject = func(r *http.Request) string { s, _ := edgetls.ClientSubject(r); return s }
	} else if l.TLS != nil {
		lc.ClientSubjectHeader = l.TLS.ClientSubjectHeader // still strip a client's copy
	}
	return lc
}

// hedge is the pool's hedging by delay; the zero value (no hedge block)
// is off.
func hedge(c *configs.Pool) proxy.Hedge {
	if c.Hedge == nil {
		return proxy.Hedge{}
	}
	return proxy.Hedge{Max: c.Hedge.Max, Auto: c.Hedge.Delay.Auto, Delay: c.Hedge.Delay.Fixed}
}
