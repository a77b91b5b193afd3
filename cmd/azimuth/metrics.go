package main

import (
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
	if ok {
		m.total.WithLabelValues("success").Inc()
		m.successful.Set(1)
		m.lastSuccess.Set(float64(time.Now().UnixNano()) / 1e9)
		return
	}
	m.total.WithLabelValues("failure").Inc()
	m.successful.Set(0)
}

// stateCollector reports the balancer's live state at scrape time: the
// request path pays nothing for these series, and backends that left a
// pool vanish from the next scrape without any label deletion.
type stateCollector struct {
	a                                     *app
	inFlight, up, zoneRatio, spill, panic *prometheus.Desc
}

func registerRuntimeMetrics(reg prometheus.Registerer, a *app) {
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&stateCollector{
			a:         a,
			inFlight:  prometheus.NewDesc("azimuth_backend_in_flight", "Requests in flight on the backend.", []string{"pool", "backend", "zone"}, nil),
			up:        prometheus.NewDesc("azimuth_backend_up", "1 if the backend may take requests (up, not drained), else 0.", []string{"pool", "backend", "zone"}, nil),
			zoneRatio: prometheus.NewDesc("azimuth_zone_healthy_ratio", "Share of the zone's backends that may take requests.", []string{"pool", "zone"}, nil),
			spill:     prometheus.NewDesc("azimuth_pool_spill_ratio", "Share of new requests the local zone sends to other zones because of its health.", []string{"pool"}, nil),
			panic:     prometheus.NewDesc("azimuth_pool_panic", "1 while the pool balances over all backends because too few are healthy.", []string{"pool"}, nil),
		},
	)
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.inFlight, c.up, c.zoneRatio, c.spill, c.panic} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	for _, p := range c.a.registry.Pools() {
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
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
