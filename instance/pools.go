package instance

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"reflect"
	"sync"
	"time"

	"github.com/azimuthproxy/azimuth/balancer"
	"github.com/azimuthproxy/azimuth/configs"
	"github.com/azimuthproxy/azimuth/discovery"
	"github.com/azimuthproxy/azimuth/health"
	"github.com/azimuthproxy/azimuth/proxy"
	edgetls "github.com/azimuthproxy/azimuth/tls"
	"github.com/hashicorp/consul/api"
)

// poolRuntime is what a pool owns beyond its balancer.Pool: the transport
// to its backends, its health tracker, checker and detector, and its Consul
// watcher or the DNS watcher of the host names among its file backends.
// It outlives reloads that keep the pool; each part is replaced only when
// its own settings change, so warm connections, health counters and the
// Consul index survive an edit elsewhere in the file.
type poolRuntime struct {
	name     string
	pool     *balancer.Pool
	tracker  *health.Tracker
	detector *health.Detector

	transport    http.RoundTripper
	transportKey string
	backendTLS   *tls.Config

	checker    *health.Checker
	checkerOff context.CancelFunc
	active     health.ActiveOptions

	watcher     *discovery.Watcher
	watcherOff  context.CancelFunc
	consulKey   string
	staticSpecs []balancer.Spec

	dns     *discovery.DNSWatcher
	dnsStop func() // cancels the DNS watcher and waits for its goroutine
	dnsKey  string

	wg     sync.WaitGroup
	cancel context.CancelFunc // ends every goroutine of the pool
	ctx    context.Context
}

// poolPlan is a pool's next settings, prepared before anything live
// changes: every part of the pool that can fail has been built or
// checked, and nothing of it runs yet. A reload that fails later drops
// the plan and nothing is left behind; commitPool cannot fail.
type poolPlan struct {
	cfg          *configs.Pool
	rt           *poolRuntime   // existing, or nil for a new pool
	bal          *balancer.Pool // rt's, or a new one the registry gets at commit
	balOpts      balancer.Options
	transport    http.RoundTripper
	transportKey string
	backendTLS   *tls.Config
	passive      health.PassiveOptions
	active       health.ActiveOptions
	activeOn     bool
	staticSpecs  []balancer.Spec // a pool whose backends the file lists

	// New parts, started at commit.
	tracker   *health.Tracker    // a new pool's
	detector  *health.Detector   // a new pool's
	checker   *health.Checker    // active checks the pool did not run before
	watcher   *discovery.Watcher // a Consul watcher new or with new settings
	consulKey string
	dns       *discovery.DNSWatcher // a DNS watcher new or with new backends, resolved once
	dnsKey    string                // "" when no file backend is a name
}

// dnsPlanWait bounds the first resolution of a pool's names in a plan:
// long enough for a resolver that answers, short enough that a dead one
// does not hold a reload (or a start) for long. Names it misses are
// resolved again as soon as the watcher runs.
const dnsPlanWait = 2 * time.Second

// fileHash returns a digest of a file's content, or of its error, so a
// changed CA or client certificate makes a new transport.
func fileHash(path string) string {
	if path == "" {
		return ""
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "error:" + err.Error()
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:8])
}

func transportKeyOf(p *configs.Pool) string {
	k := fmt.Sprintf("%s|%s|%d|%s", p.Protocol, p.Timeouts.Connect, p.MaxIdleConnsPerBackend, p.SendProxyProtocol)
	if t := p.TLS; t != nil {
		k += fmt.Sprintf("|tls:%s:%s:%s:%s:%s:%s:%s", t.CAFile, fileHash(t.CAFile), t.ServerName,
			t.CertFile, fileHash(t.CertFile), t.KeyFile, fileHash(t.KeyFile))
	}
	return k
}

// planPool prepares pool p of a reload whose proxy runs in zone and talks
// to consul. It fails, changing nothing, when a backend TLS file cannot
// be used, a health setting is refused, or the pool needs Consul and the
// reload has none.
func (i *Instance) planPool(p *configs.Pool, zone string, consul *api.Client, consulOpts discovery.Options) (*poolPlan, error) {
	rt := i.pools[p.Name]
	plan := &poolPlan{cfg: p, rt: rt, transportKey: transportKeyOf(p), balOpts: balancerOptions(zone, p)}
	if rt != nil && rt.transportKey == plan.transportKey {
		plan.transport, plan.backendTLS = rt.transport, rt.backendTLS
	} else {
		if o := backendTLS(p); o != nil {
			c, err := edgetls.BackendTLSConfig(*o)
			if err != nil {
				return nil, fmt.Errorf("pool %s: backend tls: %w", p.Name, err)
			}
			plan.backendTLS = c
		}
		plan.transport = proxy.NewTransport(proxy.TransportOptions{
			Protocol: p.Protocol, TLS: plan.backendTLS, Connect: p.Timeouts.Connect,
			MaxIdlePerBackend: p.MaxIdleConnsPerBackend, SendProxyProtocol: proxyVersion(p.SendProxyProtocol),
		})
	}
	plan.bal, _ = i.registry.Prepare(p.Name, plan.balOpts)

	plan.passive = passiveOptions(p)
	if err := plan.passive.Validate(); err != nil {
		return nil, fmt.Errorf("pool %s: passive health: %w", p.Name, err)
	}
	tracker := (*health.Tracker)(nil)
	if rt != nil {
		tracker = rt.tracker
	} else {
		// The tracker labels its lines with the pool.
		plan.tracker = health.NewTracker(plan.bal, i.logger, i.healthMetrics)
		tracker = plan.tracker
		d, err := health.NewDetector(tracker, plan.passive)
		if err != nil {
			return nil, fmt.Errorf("pool %s: passive health: %w", p.Name, err)
		}
		plan.detector = d
	}

	plan.active, plan.activeOn = activeOptions(p)
	plan.active.TLSConfig = plan.backendTLS
	if plan.activeOn {
		if err := plan.active.Validate(); err != nil {
			return nil, fmt.Errorf("pool %s: active health: %w", p.Name, err)
		}
		if rt == nil || rt.checker == nil {
			c, err := health.NewChecker(tracker, plan.active)
			if err != nil {
				return nil, fmt.Errorf("pool %s: active health: %w", p.Name, err)
			}
			plan.checker = c
		}
	}

	if p.Consul == nil {
		plan.staticSpecs = staticSpecs(p)
		if discovery.HasNames(plan.staticSpecs) {
			if err := i.planDNS(plan); err != nil {
				return nil, err
			}
		}
		return plan, nil
	}
	if consul == nil {
		return nil, fmt.Errorf("pool %s: consul is not configured", p.Name)
	}
	plan.consulKey = fmt.Sprintf("%+v|%+v", *p.Consul, consulOpts)
	if rt != nil && rt.watcher != nil && rt.consulKey == plan.consulKey {
		return plan, nil
	}
	w, err := discovery.NewWatcher(discovery.WatcherConfig{
		Pool: p.Name, Client: consul, Datacenter: consulOpts.Datacenter,
		Options: consulPoolOptions(p), Sink: drainSink{plan.bal, i.overrides},
		Logger: i.logger.With("pool", p.Name), Registerer: i.reg,
		Current: poolSpecs(plan.bal), CacheFile: cacheFile(consulOpts.CacheDir, p.Name),
	})
	if err != nil {
		return nil, fmt.Errorf("pool %s: consul: %w", p.Name, err)
	}
	plan.watcher = w
	return plan, nil
}

// planDNS prepares the DNS watcher of a pool whose file backends include
// host names: the running one if the backends and dns_refresh are the
// same, else a new one that starts from the running one's addresses and
// has resolved the names once, so the set the commit gives the pool is
// known. Its sink applies the drains in force, as a Consul pool's does.
func (i *Instance) planDNS(plan *poolPlan) error {
	p, rt := plan.cfg, plan.rt
	plan.dnsKey = fmt.Sprintf("%#v|%v", plan.staticSpecs, p.DNSRefresh) // %#v: every field, not Spec.String
	if rt != nil && rt.dns != nil && rt.dnsKey == plan.dnsKey {
		return nil
	}
	var known map[string][]string
	if rt != nil && rt.dns != nil {
		known = rt.dns.Known()
	}
	w, err := discovery.NewDNSWatcher(discovery.DNSConfig{
		Pool: p.Name, Backends: plan.staticSpecs, Refresh: p.DNSRefresh, Resolver: i.resolver,
		Sink: drainSink{plan.bal, i.overrides}, Logger: i.logger, Known: known,
	})
	if err != nil {
		return fmt.Errorf("pool %s: dns: %w", p.Name, err)
	}
	ctx, cancel := context.WithTimeout(i.ctx, dnsPlanWait)
	defer cancel()
	w.Resolve(ctx)
	plan.dns = w
	return nil
}

// commitPool brings the pool to its plan: the registry's pool takes its
// new settings, and goroutines start and stop as the settings require.
// Everything that could fail was done by planPool.
func (i *Instance) commitPool(plan *poolPlan) *poolRuntime {
	p := plan.cfg
	i.registry.Commit(plan.bal, plan.balOpts)
	rt := plan.rt
	if rt == nil {
		ctx, cancel := context.WithCancel(i.ctx)
		rt = &poolRuntime{name: p.Name, pool: plan.bal, tracker: plan.tracker, detector: plan.detector, ctx: ctx, cancel: cancel}
		rt.goRun(rt.detector.Run)
	} else if err := rt.detector.Configure(plan.passive); err != nil {
		i.logger.Error("passive health settings refused after they were checked", "pool", p.Name, "error", err)
	}
	// A replaced transport may still serve the old generation; the proxy
	// closes its idle connections once that generation's requests end.
	rt.transport, rt.transportKey, rt.backendTLS = plan.transport, plan.transportKey, plan.backendTLS
	i.commitActive(rt, plan)
	i.commitDiscovery(rt, plan)
	return rt
}

func (rt *poolRuntime) goRun(f func(context.Context)) {
	rt.goRunCtx(rt.ctx, f)
}

func (rt *poolRuntime) goRunCtx(ctx context.Context, f func(context.Context)) {
	rt.wg.Add(1)
	go func() {
		defer rt.wg.Done()
		f(ctx)
	}()
}

// commitActive starts, stops or reconfigures the pool's active checks.
func (i *Instance) commitActive(rt *poolRuntime, plan *poolPlan) {
	switch {
	case !plan.activeOn && rt.checker != nil:
		rt.checkerOff()
		rt.checker, rt.checkerOff = nil, nil
		rt.tracker.ClearActive()
	case plan.checker != nil:
		ctx, cancel := context.WithCancel(rt.ctx)
		rt.checker, rt.checkerOff, rt.active = plan.checker, cancel, plan.active
		rt.goRunCtx(ctx, plan.checker.Run)
	case plan.activeOn && !reflect.DeepEqual(plan.active, rt.active):
		if err := rt.checker.Configure(plan.active); err != nil {
			i.logger.Error("active health settings refused after they were checked", "pool", rt.name, "error", err)
			return
		}
		rt.active = plan.active
	}
}

// commitDiscovery sets the pool's backends from the file, or starts its
// new Consul or DNS watcher in place of the old one.
func (i *Instance) commitDiscovery(rt *poolRuntime, plan *poolPlan) {
	p := plan.cfg
	if plan.dnsKey == "" {
		rt.stopDNS()
	}
	if p.Consul == nil {
		if rt.watcher != nil {
			rt.watcherOff()
			rt.watcher, rt.watcherOff, rt.consulKey = nil, nil, ""
		}
		if plan.dnsKey != "" {
			rt.staticSpecs = nil // the watcher sets the backends
			i.commitDNS(rt, plan)
			return
		}
		if !reflect.DeepEqual(plan.staticSpecs, rt.staticSpecs) {
			rt.pool.Update(plan.staticSpecs)
			rt.staticSpecs = plan.staticSpecs
		}
		return
	}
	rt.staticSpecs = nil
	if plan.watcher == nil {
		return // same settings: the running watcher goes on
	}
	if rt.watcher != nil {
		rt.watcherOff() // the new watcher starts from index 0 and sends a whole set
	}
	w := plan.watcher
	ctx, cancel := context.WithCancel(rt.ctx)
	rt.watcher, rt.watcherOff, rt.consulKey = w, cancel, plan.consulKey
	rt.goRunCtx(ctx, func(ctx context.Context) {
		if err := w.Run(ctx); err != nil && ctx.Err() == nil {
			i.logger.Error("consul watcher stopped", "pool", p.Name, "error", err)
		}
	})
}

// commitDNS starts the plan's DNS watcher in place of the running one,
// after the running one has stopped, so that no set of the old one
// reaches the pool after the new one's. The new one's first set goes to
// the pool here, before the generation that serves it is published.
func (i *Instance) commitDNS(rt *poolRuntime, plan *poolPlan) {
	w := plan.dns
	if w == nil {
		return // same backends and refresh: the running watcher goes on
	}
	rt.stopDNS()
	w.Publish()
	ctx, cancel := context.WithCancel(rt.ctx)
	done := make(chan struct{})
	rt.dns, rt.dnsKey = w, plan.dnsKey
	rt.dnsStop = func() { cancel(); <-done }
	rt.goRunCtx(ctx, func(ctx context.Context) {
		defer close(done)
		if err := w.Run(ctx); err != nil && ctx.Err() == nil {
			i.logger.Error("dns watcher stopped", "pool", rt.name, "error", err)
		}
	})
}

// stopDNS stops the pool's DNS watcher, if it runs, and waits for it.
func (rt *poolRuntime) stopDNS() {
	if rt.dns == nil {
		return
	}
	rt.dnsStop()
	rt.dns, rt.dnsStop, rt.dnsKey = nil, nil, ""
}

// stop ends every goroutine of the pool and waits for them.
func (rt *poolRuntime) stop() {
	rt.cancel()
	rt.wg.Wait()
	rt.tracker.Close()
}

// poolSpecs returns the backend set the pool serves now.
func poolSpecs(p *balancer.Pool) []balancer.Spec {
	bs := p.Backends()
	specs := make([]balancer.Spec, 0, len(bs))
	for _, b := range bs {
		specs = append(specs, b.Spec())
	}
	return specs
}

// cacheFile is where a Consul pool's set is cached, "" without a cache
// directory.
func cacheFile(dir, pool string) string {
	if dir == "" {
		return ""
	}
	return discovery.CacheFile(dir, pool)
}

// proxyVersion is send_proxy_protocol as a version number, 0 for none.
func proxyVersion(s string) int {
	switch s {
	case "v1":
		return 1
	case "v2":
		return 2
	}
	return 0
}
