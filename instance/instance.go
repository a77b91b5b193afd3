package instance

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/azimuthproxy/azimuth/balancer"
	"github.com/azimuthproxy/azimuth/configs"
	"github.com/azimuthproxy/azimuth/discovery"
	"github.com/azimuthproxy/azimuth/health"
	"github.com/azimuthproxy/azimuth/proxy"
	edgetls "github.com/azimuthproxy/azimuth/tls"
	"github.com/azimuthproxy/azimuth/tls/acme"
	"github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus"
)

// Options are what an Instance takes from the process that runs it.
type Options struct {
	// Logger gets the instance's log lines; nil discards them.
	Logger *slog.Logger
	// AccessLog gets a line per request; nil writes none.
	AccessLog *proxy.AccessLog
	// Resolver looks up the host names among pools' file backends; nil
	// uses net.DefaultResolver.
	Resolver discovery.Resolver
}

// Instance is one running proxy: the current config, the pools' runtimes,
// the bound listeners, the admin listener and the request path.
//
// Two locks, neither on the request path. reloading is held from Plan to
// Commit or Discard, and by Drain, so one reload runs at a time and a plan
// is built on the config it replaces. mu guards what readers (Status,
// Ready, the collectors) look at; Commit holds it while it changes them,
// so a reader never waits for a plan being built.
type Instance struct {
	ctx     context.Context
	logger  *slog.Logger
	reg     *prometheus.Registry
	started time.Time

	registry      *balancer.Registry
	server        *proxy.Server
	healthMetrics *health.Metrics
	tlsMetrics    *edgetls.Metrics
	acmeMetrics   *acme.Metrics
	// acmeHTTP are the ACME managers in force that answer HTTP-01
	// challenges on the plain listeners.
	acmeHTTP atomic.Pointer[[]*acme.Manager]
	reloads  *reloadMetrics

	current  atomic.Pointer[configs.Config]
	loadedAt atomic.Pointer[time.Time]
	lastErr  atomic.Pointer[string]
	draining atomic.Bool
	// evacuated is who evacuated the instance and when (readiness fails,
	// requests are served), nil when not.
	evacuated atomic.Pointer[discovery.Mark]
	// overrides keeps drains and evacuation in the state file and, with
	// Consul, shares them with the region's other proxies.
	overrides *overrides
	// resolver looks up the names among file backends (Options.Resolver).
	resolver discovery.Resolver

	reloading sync.Mutex

	// Written by Commit and Drain under both locks; Plan reads them under
	// reloading alone.
	mu            sync.Mutex
	zone          string
	pools         map[string]*poolRuntime
	slots         map[string]*slot // by address
	consul        *api.Client
	consulOptions discovery.Options
	admin         *adminServer // nil until the first commit
	readyz        *http.Server // readiness.address's listener, nil without one
	readyAddr     string       // its bound address

	bg sync.WaitGroup // listeners being retired

	// planFault, set by tests only, fails a plan at the named step
	// ("pools", "listeners", "generation"), as a step that can fail would:
	// a reload that fails late must leave nothing behind.
	planFault func(step string) error
}

// New builds an instance with no config: Apply (or Plan and Commit) gives
// it one. Ending ctx stops the pools' goroutines and the certificate
// watches; Drain stops everything in order, the admin listener last.
func New(ctx context.Context, o Options) (*Instance, error) {
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	reg := prometheus.NewRegistry()
	hm, err := health.NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	tm, err := edgetls.NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	am, err := acme.NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	i := &Instance{
		ctx: ctx, logger: logger, reg: reg, started: time.Now(),
		acmeMetrics:   am,
		registry:      balancer.NewRegistry(),
		healthMetrics: hm,
		tlsMetrics:    tm,
		pools:         map[string]*poolRuntime{},
		slots:         map[string]*slot{},
		resolver:      o.Resolver,
	}
	i.overrides = newOverrides(i)
	i.server = proxy.NewServer(ctx, proxy.Options{Logger: logger, Metrics: proxy.NewMetrics(reg), AccessLog: o.AccessLog})
	i.reloads = newReloadMetrics(reg)
	registerStateMetrics(reg, i)
	return i, nil
}

func (i *Instance) cfg() *configs.Config { return i.current.Load() }

// AdminAddr is the admin listener's bound address, or "" before the first
// commit.
func (i *Instance) AdminAddr() string {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.admin == nil {
		return ""
	}
	return i.admin.addr
}

// ReadyAddr is the readiness listener's bound address, or "" when the
// config has none (or before the first commit).
func (i *Instance) ReadyAddr() string {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.readyAddr
}
