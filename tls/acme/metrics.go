package acme

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the managed certificates' metrics, shared by every Manager
// on one Registerer.
type Metrics struct {
	expiry *prometheus.Desc
	orders *prometheus.CounterVec

	mu       sync.Mutex
	managers map[*Manager]struct{}
}

// NewMetrics registers the ACME metrics on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		expiry: prometheus.NewDesc("azimuth_acme_certificate_expiry_seconds",
			"Seconds until a managed certificate's NotAfter; absent until it is obtained.",
			[]string{"listener", "name"}, nil),
		orders: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "azimuth_acme_orders_total",
			Help: "Certificate orders this proxy placed with the ACME CA, by kind (obtain, renew) and result (ok, failed). A proxy that found the certificate in shared storage places none.",
		}, []string{"listener", "name", "kind", "result"}),
		managers: map[*Manager]struct{}{},
	}
	for _, c := range []prometheus.Collector{m, m.orders} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) attach(g *Manager) {
	m.mu.Lock()
	m.managers[g] = struct{}{}
	m.mu.Unlock()
}

func (m *Metrics) detach(g *Manager) {
	m.mu.Lock()
	delete(m.managers, g)
	m.mu.Unlock()
}

func (m *Metrics) order(listener, name, kind, result string) {
	if m != nil {
		m.orders.WithLabelValues(listener, name, kind, result).Inc()
	}
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) { ch <- m.expiry }

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	for g := range m.managers {
		for name, at := range g.Expiry() {
			ch <- prometheus.MustNewConstMetric(m.expiry, prometheus.GaugeValue, at.Sub(now).Seconds(), g.s.Listener, name)
		}
	}
}
