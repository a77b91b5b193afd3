package instance

import (
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// reloadMetrics are the config reload series.
type reloadMetrics struct {
	total       *prometheus.CounterVec
	successful  prometheus.Gauge
	lastSuccess prometheus.Gauge
}

func newReloadMetrics(reg prometheus.Registerer) *reloadMetrics {
	m := &reloadMetrics{
		total: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "azimuth_config_reloads_total", Help: "Config reloads, by result (success or failure).",
		}, []string{"result"}),
		successful: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "azimuth_config_last_reload_successful", Help: "1 if the last reload succeeded, 0 while the running config is older than a bad file.",
		}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "azimuth_config_last_reload_success_timestamp_seconds", Help: "Unix time of the last successful config load.",
		}),
	}
	reg.MustRegister(m.total, m.successful, m.lastSuccess)
	m.total.WithLabelValues("success")
	m.total.WithLabelValues("failure")
	return m
}

func (m *reloadMetrics) record(ok bool) {
	// The gauges first: whoever sees the count move sees them match it.
	if ok {
		m.successful.Set(1)
		m.lastSuccess.Set(float64(time.Now().UnixNano()) / 1e9)
		m.total.WithLabelValues("success").Inc()
		return
	}
	m.successful.Set(0)
	m.total.WithLabelValues("failure").Inc()
}

// stateCollector reports the balancer's live state at scrape time: the
// request path pays nothing for these series, and backends that left a
// pool vanish from the next scrape without any label deletion.
type stateCollector struct {
	i                                             *Instance
	inFlight, up, zoneRatio, spill, panic, perTry *prometheus.Desc
	evacuated, ready                              *prometheus.Desc
}

// registerStateMetrics registers the Go runtime's and the process's
// collectors and i's stateCollector on reg.
func registerStateMetrics(reg prometheus.Registerer, i *Instance) {
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&stateCollector{
			i:         i,
			inFlight:  prometheus.NewDesc("azimuth_backend_in_flight", "Requests in flight on the backend.", []string{"pool", "backend", "zone"}, nil),
			up:        prometheus.NewDesc("azimuth_backend_up", "1 if the backend may take requests (up, not drained), else 0.", []string{"pool", "backend", "zone"}, nil),
			zoneRatio: prometheus.NewDesc("azimuth_zone_healthy_ratio", "Share of the zone's backends that may take requests.", []string{"pool", "zone"}, nil),
			spill:     prometheus.NewDesc("azimuth_pool_spill_ratio", "Share of new requests the local zone sends to other zones because of its health.", []string{"pool"}, nil),
			panic:     prometheus.NewDesc("azimuth_pool_panic", "1 while the pool balances over all backends because too few are healthy.", []string{"pool"}, nil),
			perTry: prometheus.NewDesc("azimuth_per_try_timeout_seconds",
				"The pool's per-try timeout now: learned from its latency (mode auto) or fixed; 0 when off.", []string{"pool", "mode"}, nil),
			evacuated: prometheus.NewDesc("azimuth_evacuated", "1 while an operator has evacuated the proxy (POST /evacuate): readiness fails, requests are served.", nil, nil),
			ready:     prometheus.NewDesc("azimuth_ready", "1 while /readyz answers ready.", nil, nil),
		},
	)
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.inFlight, c.up, c.zoneRatio, c.spill, c.panic, c.perTry, c.evacuated, c.ready} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(c.evacuated, prometheus.GaugeValue, b2f(c.i.evacuated.Load() != nil))
	ch <- prometheus.MustNewConstMetric(c.ready, prometheus.GaugeValue, b2f(c.i.Ready().Ready))
	for _, p := range c.i.registry.Pools() {
		for _, b := range p.Backends() {
			ch <- prometheus.MustNewConstMetric(c.inFlight, prometheus.GaugeValue, float64(b.InFlight()), p.Name(), b.Address(), b.Zone())
			ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, b2f(b.Available()), p.Name(), b.Address(), b.Zone())
		}
		st := p.Status()
		for _, z := range st.Zones {
			ch <- prometheus.MustNewConstMetric(c.zoneRatio, prometheus.GaugeValue, z.HealthyShare(), p.Name(), z.Zone)
		}
		ch <- prometheus.MustNewConstMetric(c.spill, prometheus.GaugeValue, st.SpillRatio, p.Name())
		ch <- prometheus.MustNewConstMetric(c.panic, prometheus.GaugeValue, b2f(st.Panic), p.Name())
	}
	if g := c.i.server.Current(); g != nil {
		for _, name := range g.PoolNames() {
			pt := perTryOf(g.Pool(name))
			ch <- prometheus.MustNewConstMetric(c.perTry, prometheus.GaugeValue, pt.Seconds, name, pt.Mode)
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// PoolCounts are a pool's request counters since the instance started, for
// /status; the status page turns them into rates between refreshes.
type PoolCounts struct {
	Requests float64 `json:"requests_total"`
	Errors   float64 `json:"errors_total"` // answered with a 5xx status
	Retries  float64 `json:"retries_total"`
}

// countsByPool sums azimuth_requests_total and azimuth_retries_total per
// pool from a scrape of g. It reads the same series /metrics exposes, so
// the request path keeps no second set of counters; the scrape costs about
// as much as one /metrics request, which suits a page polled every few
// seconds.
func countsByPool(g prometheus.Gatherer) (map[string]PoolCounts, error) {
	families, err := g.Gather()
	if err != nil {
		return nil, fmt.Errorf("gathering request counters: %w", err)
	}
	out := map[string]PoolCounts{}
	for _, f := range families {
		name := f.GetName()
		if name != "azimuth_requests_total" && name != "azimuth_retries_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			var pool, code string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "pool":
					pool = l.GetValue()
				case "code":
					code = l.GetValue()
				}
			}
			c := out[pool]
			v := m.GetCounter().GetValue()
			if name == "azimuth_retries_total" {
				c.Retries += v
			} else {
				c.Requests += v
				if strings.HasPrefix(code, "5") {
					c.Errors += v
				}
			}
			out[pool] = c
		}
	}
	return out, nil
}
