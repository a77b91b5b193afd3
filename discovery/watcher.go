package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/azimuthproxy/azimuth/balancer"
)

// Sink receives a pool's whole backend set, sorted by address, each time it
// changes. The balancer's pool satisfies it. The slice is the sink's to
// keep: the watcher never touches it after handing it over. Update is
// called from the watcher's Run goroutine only.
type Sink interface {
	Update(specs []balancer.Spec)
}

// healthQuerier is the one Consul call a watcher makes; *api.Health has it.
type healthQuerier interface {
	ServiceMultipleTags(service string, tags []string, passingOnly bool, q *api.QueryOptions) ([]*api.ServiceEntry, *api.QueryMeta, error)
}

// WatcherConfig is everything a Watcher needs.
type WatcherConfig struct {
	// Pool names the pool in logs and metric labels.
	Pool string
	// Client talks to the agent; see NewClient.
	Client *api.Client
	// Datacenter overrides the client's datacenter for this watcher.
	Datacenter string
	// Options selects and converts the service's instances.
	Options PoolOptions
	// Sink receives each new set.
	Sink Sink
	// Logger receives the watcher's structured logs; nil discards them.
	Logger *slog.Logger
	// Registerer receives the metrics; nil keeps them private.
	Registerer prometheus.Registerer
	// Timing tunes the loop; zero fields take defaults.
	Timing Timing
	// Rand returns a number in [0, 1) for back-off jitter; nil uses
	// math/rand/v2.
	Rand func() float64
	// Now tells the time for State and metrics; nil uses time.Now.
	Now func() time.Time
	// Current is the set the pool serves as the watcher starts: the last
	// set of a watcher this one replaces after a reload, or the backends
	// the file gave. An empty first answer holds it, as an empty answer
	// after a full one does, so a reload that points the pool at a
	// service with no instance (a typo, a service not yet registered)
	// does not empty it. The first answer with instances replaces it.
	Current []balancer.Spec
	// CacheFile, if set, is where the watcher keeps the last set Consul
	// gave it (see CacheFile). A watcher that starts with no Current set
	// and finds a cached set of its service there serves it until the
	// agent answers, so a restart during a Consul outage keeps the pool's
	// backends; State then says FromCache.
	CacheFile string
}

// Watcher follows one Consul service for one pool with blocking queries and
// hands every changed set to its Sink. Create it with NewWatcher and drive
// it with Run; State may be read from any goroutine.
type Watcher struct {
	pool    string
	dc      string
	opts    PoolOptions
	health  healthQuerier
	sink    Sink
	log     *slog.Logger
	metrics *metrics
	timing  Timing
	rand    func() float64
	now     func() time.Time

	cacheFile string

	running atomic.Bool
	state   atomic.Pointer[State]

	// Owned by the Run goroutine.
	index       uint64
	last        []balancer.Spec
	sent        bool
	errorsInRow int
	filtered    bool
	noZone      map[string]struct{}
	badWeight   map[string]struct{}
}

// NewWatcher checks cfg and builds a watcher; it does not contact Consul.
func NewWatcher(cfg WatcherConfig) (*Watcher, error) {
	if cfg.Client == nil {
		return nil, errors.New("creating consul watcher: no client")
	}
	if cfg.Sink == nil {
		return nil, errors.New("creating consul watcher: no sink")
	}
	if err := cfg.Options.Validate(); err != nil {
		return nil, fmt.Errorf("creating consul watcher for pool %q: %w", cfg.Pool, err)
	}
	reg := cfg.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("creating consul watcher for pool %q: %w", cfg.Pool, err)
	}
	w := &Watcher{
		pool:      cfg.Pool,
		dc:        cfg.Datacenter,
		opts:      cfg.Options,
		health:    cfg.Client.Health(),
		sink:      cfg.Sink,
		log:       cfg.Logger,
		metrics:   m,
		timing:    cfg.Timing.withDefaults(),
		rand:      cfg.Rand,
		now:       cfg.Now,
		noZone:    map[string]struct{}{},
		badWeight: map[string]struct{}{},
		cacheFile: cfg.CacheFile,
	}
	w.opts.Tags = slices.Clone(cfg.Options.Tags)
	w.last = slices.Clone(cfg.Current)
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	w.log = w.log.With("pool", cfg.Pool, "service", cfg.Options.Service)
	if w.rand == nil {
		w.rand = rand.Float64
	}
	if w.now == nil {
		w.now = time.Now
	}
	w.state.Store(&State{})
	m.syncState.WithLabelValues(w.pool).Set(0)
	m.errors.WithLabelValues(w.pool).Add(0)
	m.updates.WithLabelValues(w.pool).Add(0)
	return w, nil
}

// State returns the watcher's latest sync state.
func (w *Watcher) State() State {
	return *w.state.Load()
}

// Run follows the service until ctx is done, then returns ctx's error. It
// may be called once per watcher.
func (w *Watcher) Run(ctx context.Context) error {
	if !w.running.CompareAndSwap(false, true) {
		return errors.New("consul watcher already running")
	}
	w.log.Info("watching consul service")
	w.startFromCache()
	var lastStart time.Time
	for {
		// Rate limit: a service whose answer changes all the time cannot
		// make the loop spin.
		if wait := w.timing.MinInterval - time.Since(lastStart); !lastStart.IsZero() && wait > 0 {
			if !sleep(ctx, wait) {
				return ctx.Err()
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		lastStart = time.Now()
		err := w.once(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err == nil {
			continue
		}
		w.errorsInRow++
		// Start over from index 0: the agent may have been restarted or
		// replaced, and a new one's index can be behind ours, so waiting
		// on our old index would hang until it caught up, missing every
		// change until then. The first answer after an error is a full
		// one, which is what a resync needs anyway.
		w.index = 0
		w.recordError(err)
		delay := backoff(w.errorsInRow, w.timing.BackoffBase, w.timing.BackoffMax, w.rand())
		// The first failure of a run is a warning; the retries after it,
		// about one a second, only say so at debug level: "consul answers
		// again" closes the run with its count.
		level := slog.LevelWarn
		if w.errorsInRow > 1 {
			level = slog.LevelDebug
		}
		w.log.Log(ctx, level, "querying consul failed; keeping the last backend set", "error", err, "errors_in_a_row", w.errorsInRow, "retry_in", delay)
		if !sleep(ctx, delay) {
			return ctx.Err()
		}
	}
}

// once runs one blocking query and applies its answer. A panic (in the sink,
// say) is turned into an error so the loop backs off instead of dying.
func (w *Watcher) once(ctx context.Context) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("applying consul answer: panic: %v", p)
		}
	}()
	// The agent adds up to Wait/16 of jitter; past that plus some slack,
	// the connection is dead even if TCP has not noticed yet.
	qctx, cancel := context.WithTimeout(ctx, w.timing.Wait+w.timing.Wait/16+10*time.Second)
	defer cancel()
	q := (&api.QueryOptions{
		Datacenter: w.dc,
		AllowStale: w.opts.AllowStale,
		WaitIndex:  w.index,
		WaitTime:   w.timing.Wait,
	}).WithContext(qctx)
	entries, meta, err := w.health.ServiceMultipleTags(w.opts.Service, w.opts.Tags, !w.opts.IncludeWarning, q)
	if err != nil {
		return fmt.Errorf("querying health of service %s: %w", w.opts.Service, err)
	}
	next := nextIndex(w.index, meta.LastIndex)
	if next == 0 {
		w.log.Info("consul index went backwards; starting over", "was", w.index, "got", meta.LastIndex)
	}
	w.index = next
	w.filtered = meta.ResultsFilteredByACLs
	if w.filtered {
		// With default-deny ACLs, a token without service:read and
		// node:read gets an empty or partial answer, not an error. Applying
		// it would empty the pool because of a token: it is an error, and
		// the pool keeps its last set.
		return errHidden
	}
	if w.errorsInRow > 0 {
		w.log.Info("consul answers again", "errors_in_a_row", w.errorsInRow)
	}
	w.errorsInRow = 0
	w.apply(buildSnapshot(entries, w.opts))
	return nil
}

// errHidden is the error of an answer Consul filtered with the token's ACLs.
var errHidden = errors.New("consul hid instances from this token (it needs service:read and node:read)")

// apply records success, then hands the new set to the sink when it
// differs from the last one (or is the first). An empty set after a
// non-empty one is held back: the pool keeps its last set (see holding).
// State is stored first so that whoever sees the pool change also sees
// the watcher synced.
func (w *Watcher) apply(s snapshot) {
	w.noteOnce(w.noZone, s.noZone, "consul instance has no zone; it joins zone \"\"",
		"zone_meta", w.opts.ZoneMeta, "zone_tag_prefix", w.opts.ZoneTagPrefix)
	w.noteOnce(w.badWeight, s.badWeight, "consul instance weight metadata is not a positive integer; using the service weights",
		"weight_meta", w.opts.WeightMeta)
	now := w.now()
	prev := w.state.Load()
	hold := w.holding(s)
	size := len(s.specs)
	if hold {
		size = len(w.last)
	}
	w.state.Store(&State{
		Synced:         true,
		LastSuccess:    now,
		LastError:      prev.LastError,
		LastErrorTime:  prev.LastErrorTime,
		Backends:       size,
		Index:          w.index,
		FilteredByACLs: w.filtered,
		Holding:        hold,
	})
	w.metrics.lastSuccess.WithLabelValues(w.pool).Set(float64(now.UnixNano()) / 1e9)
	w.metrics.syncState.WithLabelValues(w.pool).Set(1)
	if hold {
		if !prev.Holding {
			w.log.Warn("consul has no usable instance of the service; the pool keeps its last backend set",
				"backends", len(w.last), "index", w.index)
		}
		return
	}
	if prev.Holding {
		w.log.Info("consul has instances of the service again", "backends", len(s.specs))
	}
	if w.sent && slices.Equal(w.last, s.specs) {
		return
	}
	w.sink.Update(slices.Clone(s.specs))
	w.last = s.specs
	w.sent = true
	w.saveCache(now)
	w.metrics.updates.WithLabelValues(w.pool).Inc()
	w.metrics.backends.WithLabelValues(w.pool).Set(float64(len(s.specs)))
	w.log.Info("backend set from consul", "backends", len(s.specs), "skipped", s.skipped, "index", w.index)
}

// holding reports whether s is an empty set that would empty a pool
// Consul filled before. A service with no passing instance is far more
// often an outage of Consul's view (checks failing everywhere at once, a
// deregistration by mistake, a token that lost its rights) than a wish to
// stop serving, and an empty pool answers every request with 503: the
// last set is kept instead, and Azimuth's own health checks judge its
// backends. Remove the pool from the config to empty it on purpose.
func (w *Watcher) holding(s snapshot) bool {
	return len(s.specs) == 0 && len(w.last) > 0
}

// recordError marks the watcher out of sync.
func (w *Watcher) recordError(err error) {
	prev := w.state.Load()
	w.state.Store(&State{
		Synced:         false,
		LastSuccess:    prev.LastSuccess,
		LastError:      err.Error(),
		LastErrorTime:  w.now(),
		Backends:       len(w.last),
		Index:          w.index,
		FilteredByACLs: w.filtered,
		Holding:        prev.Holding,
		FromCache:      prev.FromCache,
		CachedAt:       prev.CachedAt,
	})
	w.metrics.errors.WithLabelValues(w.pool).Inc()
	w.metrics.syncState.WithLabelValues(w.pool).Set(0)
}

// noteOnce logs msg for each address not logged before, and forgets
// addresses that are gone, so the set stays as small as the pool.
func (w *Watcher) noteOnce(seen map[string]struct{}, addrs []string, msg string, attrs ...any) {
	current := make(map[string]struct{}, len(addrs))
	for _, a := range addrs {
		current[a] = struct{}{}
		if _, ok := seen[a]; !ok {
			w.log.Warn(msg, append([]any{"address", a}, attrs...)...)
		}
	}
	clear(seen)
	for a := range current {
		seen[a] = struct{}{}
	}
}

// sleep waits for d or until ctx is done; it reports whether d elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// startFromCache hands the sink the cached set of a watcher that starts
// with none (a process start, not a reload: a reload's watcher starts from
// the set the pool serves), so the pool serves while the agent is away.
func (w *Watcher) startFromCache() {
	if w.cacheFile == "" || len(w.last) > 0 {
		return
	}
	c, ok, err := loadCache(w.cacheFile, w.opts.Service)
	if err != nil {
		w.log.Warn("reading the cached backend set", "error", err)
		return
	}
	if !ok {
		return
	}
	// State first, as apply does: whoever sees the pool fill sees where
	// the set came from.
	w.state.Store(&State{Backends: len(c.Backends), FromCache: true, CachedAt: c.Saved})
	w.sink.Update(slices.Clone(c.Backends))
	w.last, w.sent = c.Backends, true
	w.metrics.backends.WithLabelValues(w.pool).Set(float64(len(c.Backends)))
	w.log.Warn("serving the cached backend set until consul answers", "backends", len(c.Backends), "cached_at", c.Saved, "file", w.cacheFile)
}

// saveCache keeps the set just handed to the sink on disk. A failure is
// logged and changes nothing else: the cache only matters at a start.
func (w *Watcher) saveCache(now time.Time) {
	if w.cacheFile == "" {
		return
	}
	if err := saveCache(w.cacheFile, cached{Service: w.opts.Service, Pool: w.pool, Saved: now, Backends: w.last}); err != nil {
		w.log.Warn("caching the backend set", "error", err, "file", w.cacheFile)
	}
}
