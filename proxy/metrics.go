package proxy

import (
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the request path's Prometheus series. Children are resolved
// once per label set and cached in copy-on-write maps, so a request does no
// label lookup and takes no lock.
type Metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	attempts *prometheus.CounterVec
	retries  *prometheus.CounterVec
	refusals *prometheus.CounterVec
	hedges   *prometheus.CounterVec
	backups  *prometheus.CounterVec
	limited  *prometheus.CounterVec
}

// NewMetrics registers the request path's series on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "azimuth_requests_total", Help: "Requests answered, by listener, pool and status code.",
		}, []string{"listener", "pool", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "azimuth_request_duration_seconds", Help: "Time from request start to response headers, all attempts included.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"pool"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "azimuth_attempts_total", Help: "Attempts sent to backends, by pool, backend zone and result.",
		}, []string{"pool", "zone", "result"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "azimuth_retries_total", Help: "Retries and hedges, by pool, the zone left, the zone tried and the cause (timeout and backend_out for hedges).",
		}, []string{"pool", "from_zone", "to_zone", "cause"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "azimuth_retries_refused_total", Help: "Retries and hedges a failure or a per-try timeout called for but the rules refused, by pool and reason.",
		}, []string{"pool", "reason"}),
		hedges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "azimuth_hedges_total", Help: "Hedges (attempts started beside one still running), by pool and whether their response won.",
		}, []string{"pool", "result"}),
		backups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "azimuth_backup_requests_total", Help: "Requests a pool sent to its backup pool (another region), by pool, backup pool and why: no healthy backend at the start, or no answer from the pool's own attempts.",
		}, []string{"pool", "backup", "reason"}),
	}
	m.limited = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "azimuth_rate_limited_total", Help: "Requests answered 429 by a route's rate limit, by listener and route.",
	}, []string{"listener", "route"})
	reg.MustRegister(m.requests, m.duration, m.attempts, m.retries, m.refusals, m.hedges, m.backups, m.limited)
	return m
}

// poolMetrics are one pool's resolved children.
type poolMetrics struct {
	backups    cache[backupKey, prometheus.Counter]
	duration   prometheus.Observer
	hedgesWon  prometheus.Counter
	hedgesLost prometheus.Counter
	refusals   cache[string, prometheus.Counter]
	attempts   cache[attemptKey, prometheus.Counter]
	retries    cache[retryKey, prometheus.Counter]
	requests   cache[requestKey, prometheus.Counter]
}

type attemptKey struct {
	zone  string
	cause Cause
}

type retryKey struct {
	from, to string
	cause    Cause
}

type backupKey struct{ backup, reason string }

type requestKey struct {
	listener string
	code     int
}

func (m *Metrics) pool(name string) *poolMetrics {
	if m == nil {
		return nil
	}
	return &poolMetrics{
		backups: cache[backupKey, prometheus.Counter]{make: func(k backupKey) prometheus.Counter {
			return m.backups.WithLabelValues(name, k.backup, k.reason)
		}},
		duration:   m.duration.WithLabelValues(name),
		hedgesWon:  m.hedges.WithLabelValues(name, "won"),
		hedgesLost: m.hedges.WithLabelValues(name, "lost"),
		refusals: cache[string, prometheus.Counter]{make: func(reason string) prometheus.Counter {
			return m.refusals.WithLabelValues(name, reason)
		}},
		attempts: cache[attemptKey, prometheus.Counter]{make: func(k attemptKey) prometheus.Counter {
			return m.attempts.WithLabelValues(name, k.zone, k.cause.String())
		}},
		retries: cache[retryKey, prometheus.Counter]{make: func(k retryKey) prometheus.Counter {
			return m.retries.WithLabelValues(name, k.from, k.to, k.cause.String())
		}},
		requests: cache[requestKey, prometheus.Counter]{make: func(k requestKey) prometheus.Counter {
			return m.requests.WithLabelValues(k.listener, name, strconv.Itoa(k.code))
		}},
	}
}

// forget deletes every series of a pool that left the config.
func (m *Metrics) forget(pool string) {
	if m == nil {
		return
	}
	l := prometheus.Labels{"pool": pool}
	m.requests.DeletePartialMatch(l)
	m.duration.DeletePartialMatch(l)
	m.attempts.DeletePartialMatch(l)
	m.retries.DeletePartialMatch(l)
	m.refusals.DeletePartialMatch(l)
	m.hedges.DeletePartialMatch(l)
	m.backups.DeletePartialMatch(l)
}

// hedge counts a hedge that ended, won or lost.
func (m *poolMetrics) hedge(won bool) {
	if won {
		m.hedgesWon.Inc()
	} else {
		m.hedgesLost.Inc()
	}
}

// refused counts a retry or hedge refused for reason.
func (m *poolMetrics) refused(reason string) { m.refusals.get(reason).Inc() }

// cache maps label keys to resolved children: lookups read an immutable map
// through an atomic pointer; a miss copies the map under a mutex. Label sets
// are few (zones, codes), so copies are rare.
type cache[K comparable, V any] struct {
	m    atomic.Pointer[map[K]V]
	mu   sync.Mutex
	make func(K) V
}

func (c *cache[K, V]) get(k K) V {
	if m := c.m.Load(); m != nil {
		if v, ok := (*m)[k]; ok {
			return v
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.m.Load()
	if old != nil {
		if v, ok := (*old)[k]; ok {
			return v
		}
	}
	next := make(map[K]V, 1+lenOf(old))
	if old != nil {
		for kk, vv := range *old {
			next[kk] = vv
		}
	}
	v := c.make(k)
	next[k] = v
	c.m.Store(&next)
	return v
}

func lenOf[K comparable, V any](m *map[K]V) int {
	if m == nil {
		return 0
	}
	return len(*m)
}
