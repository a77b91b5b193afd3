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
	requests        *prometheus.CounterVec
	duration        *prometheus.HistogramVec
	attempts        *prometheus.CounterVec
	retries         *prometheus.CounterVec
	budgetExhausted *prometheus.CounterVec
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
			Name: "azimuth_retries_total", Help: "Retries, by pool, the zone that failed, the zone retried and the cause.",
		}, []string{"pool", "from_zone", "to_zone", "cause"}),
		budgetExhausted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "azimuth_retry_budget_exhausted_total", Help: "Retries refused because the pool's retry budget was spent.",
		}, []string{"pool"}),
	}
	reg.MustRegister(m.requests, m.duration, m.attempts, m.retries, m.budgetExhausted)
	return m
}

// poolMetrics are one pool's resolved children.
type poolMetrics struct {
	duration        prometheus.Observer
	budgetExhausted prometheus.Counter
	attempts        cache[attemptKey, prometheus.Counter]
	retries         cache[retryKey, prometheus.Counter]
	requests        cache[requestKey, prometheus.Counter]
}

type attemptKey struct {
	zone  string
	cause Cause
}

type retryKey struct {
	from, to string
	cause    Cause
}

type requestKey struct {
	listener string
	code     int
}

func (m *Metrics) pool(name string) *poolMetrics {
	if m == nil {
		return nil
	}
	return &poolMetrics{
		duration:        m.duration.WithLabelValues(name),
		budgetExhausted: m.budgetExhausted.WithLabelValues(name),
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
	m.budgetExhausted.DeletePartialMatch(l)
}

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
