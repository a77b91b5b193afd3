package main

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

	"github.com/azimuthproxy/azimuth/balancer"
	"github.com/azimuthproxy/azimuth/configs"
	"github.com/azimuthproxy/azimuth/discovery"
	"github.com/azimuthproxy/azimuth/health"
	"github.com/azimuthproxy/azimuth/proxy"
	edgetls "github.com/azimuthproxy/azimuth/tls"
)

// poolRuntime is what a pool owns beyond its balancer.Pool: the transport
// to its backends, its health tracker, checker and detector, and its Consul
// watcher. It outlives reloads that keep the pool; each part is replaced
// only when its own settings change, so warm connections, health counters
// and the Consul index survive an edit elsewhere in the file.
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

	wg     sync.WaitGroup
	cancel context.CancelFunc // ends every goroutine of the pool
	ctx    context.Context
}

// poolPlan is a pool's next settings, prepared before anything live changes.
type poolPlan struct {
	cfg          *configs.Pool
	rt           *poolRuntime // existing, or nil for a new pool
	transport    http.RoundTripper
	transportKey string
	backendTLS   *tls.Config
}

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
	k := fmt.Sprintf("%s|%s|%d", p.Protocol, p.Timeouts.Connect, p.MaxIdleConnsPerBackend)
	if t := p.TLS; t != nil {
		k += fmt.Sprintf("|tls:%s:%s:%s:%s:%s:%s:%s", t.CAFile, fileHash(t.CAFile), t.ServerName,
			t.CertFile, fileHash(t.CertFile), t.KeyFile, fileHash(t.KeyFile))
	}
	return k
}

// planPool prepares a pool's transport; it fails, changing nothing, when a
// backend TLS file cannot be used.
func planPool(p *configs.Pool, rt *poolRuntime) (*poolPlan, error) {
	plan := &poolPlan{cfg: p, rt: rt, transportKey: transportKeyOf(p)}
	if rt != nil && rt.transportKey == plan.transportKey {
		plan.transport, plan.backendTLS = rt.transport, rt.backendTLS
		return plan, nil
	}
	if o := backendTLS(p); o != nil {
		c, err := edgetls.BackendTLSConfig(*o)
		if err != nil {
			return nil, fmt.Errorf("pool %s: backend tls: %w", p.Name, err)
		}
		plan.backendTLS = c
	}
	plan.transport = proxy.NewTransport(proxy.TransportOptions{
		Protocol: p.Protocol, TLS: plan.backendTLS, Connect: p.Timeouts.Connect,
		MaxIdlePerBackend: p.MaxIdleConnsPerBackend,
	})
	return plan, nil
}

// apply brings the pool's runtime to plan, starting and stopping its
// goroutines as its settings require.
func (a *app) applyPool(plan *poolPlan) (*poolRuntime, error) {
	p := plan.cfg
	rt := plan.rt
	if rt == nil {
		pool := a.registry.Pool(p.Name, balancerOptions(a.zone, p))
		tracker := health.NewTracker(pool, a.logger, a.healthMetrics) // it labels its lines with the pool
		det, err := health.NewDetector(tracker, passiveOptions(p))
		if err != nil {
			return nil, fmt.Errorf("pool %s: passive health: %w", p.Name, err)
		}
		ctx, cancel := context.WithCancel(a.ctx)
		rt = &poolRuntime{name: p.Name, pool: pool, tracker: tracker, detector: det, ctx: ctx, cancel: cancel}
		rt.goRun(det.Run)
	} else {
		a.registry.Pool(p.Name, balancerOptions(a.zone, p))
		if err := rt.detector.Configure(passiveOptions(p)); err != nil {
			return nil, fmt.Errorf("pool %s: passive health: %w", p.Name, err)
		}
	}
	// A replaced transport may still serve the old generation; the proxy
	// closes its idle connections once that generation's requests end.
	rt.transport, rt.transportKey, rt.backendTLS = plan.transport, plan.transportKey, plan.backendTLS
	if err := a.applyActive(rt, p, plan.backendTLS); err != nil {
		return nil, err
	}
	if err := a.applyDiscovery(rt, p); err != nil {
		return nil, err
	}
	return rt, nil
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

func (a *app) applyActive(rt *poolRuntime, p *configs.Pool, backendTLS *tls.Config) error {
	o, on := activeOptions(p)
	o.TLSConfig = backendTLS
	switch {
	case !on && rt.checker != nil:
		rt.checkerOff()
		rt.checker, rt.checkerOff = nil, nil
		rt.tracker.ClearActive()
	case on && rt.checker == nil:
		c, err := health.NewChecker(rt.tracker, o)
		if err != nil {
			return fmt.Errorf("pool %s: active health: %w", p.Name, err)
		}
		ctx, cancel := context.WithCancel(rt.ctx)
		rt.checker, rt.checkerOff, rt.active = c, cancel, o
		rt.goRunCtx(ctx, c.Run)
	case on && !reflect.DeepEqual(o, rt.active):
		if err := rt.checker.Configure(o); err != nil {
			return fmt.Errorf("pool %s: active health: %w", p.Name, err)
		}
		rt.active = o
	}
	return nil
}

// applyDiscovery sets the pool's backends from the file, or (re)starts its
// Consul watcher when its settings changed.
func (a *app) applyDiscovery(rt *poolRuntime, p *configs.Pool) error {
	if p.Consul == nil {
		if rt.watcher != nil {
			rt.watcherOff()
			rt.watcher, rt.watcherOff, rt.consulKey = nil, nil, ""
		}
		specs := staticSpecs(p)
		if !reflect.DeepEqual(specs, rt.staticSpecs) {
			rt.pool.Update(specs)
			rt.staticSpecs = specs
		}
		return nil
	}
	rt.staticSpecs = nil
	key := fmt.Sprintf("%+v|%+v", *p.Consul, a.consulOptions)
	if rt.watcher != nil && key == rt.consulKey {
		return nil
	}
	if a.consul == nil {
		return fmt.Errorf("pool %s: consul is not configured", p.Name)
	}
	w, err := discovery.NewWatcher(discovery.WatcherConfig{
		Pool: p.Name, Client: a.consul, Datacenter: a.consulOptions.Datacenter,
		Options: consulPoolOptions(p), Sink: rt.pool,
		Logger: a.logger.With("pool", p.Name), Registerer: a.consulMetrics,
		Current: poolSpecs(rt.pool),
	})
	if err != nil {
		return fmt.Errorf("pool %s: consul: %w", p.Name, err)
	}
	if rt.watcher != nil {
		rt.watcherOff() // the new watcher starts from index 0 and sends a whole set
	}
	ctx, cancel := context.WithCancel(rt.ctx)
	rt.watcher, rt.watcherOff, rt.consulKey = w, cancel, key
	rt.goRunCtx(ctx, func(ctx context.Context) {
		if err := w.Run(ctx); err != nil && ctx.Err() == nil {
			a.logger.Error("consul watcher stopped", "pool", p.Name, "error", err)
		}
	})
	return nil
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
