package edgetls

import (
	"fmt"
	"sort"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics exports azimuth_tls_certificate_expiry_seconds{listener,name} for
// every Source attached to it. Make one per Registerer and share it among
// listeners and config generations: a new generation's Source attaches
// while the old one still serves, and the old one detaches on Close, so a
// config reload never meets "already registered".
//
// The value is read from each Source's current snapshot at scrape time, so
// it is always "seconds until NotAfter" now, and a replaced certificate's
// label set disappears with the snapshot that held it: nothing to delete by
// hand, nothing to go stale.
type Metrics struct {
	desc *prometheus.Desc
	// reloads counts certificate pairs and client CA bundles read again by
	// result: "ok" when a changed one went live, "refused" when one failed
	// and the old one stayed in use. Alert on refused.
	reloads *prometheus.CounterVec

	mu      sync.Mutex
	sources map[*Source]struct{}
}

// NewMetrics registers the TLS metrics on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		desc: prometheus.NewDesc(
			"azimuth_tls_certificate_expiry_seconds",
			"Seconds until the served certificate's NotAfter; name is its first DNS SAN or CN.",
			[]string{"listener", "name"}, nil),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "azimuth_tls_certificate_reloads_total",
			Help: "Certificate pairs and client CA bundles read again after a change, by result: ok (now in use) or refused (old one kept).",
		}, []string{"listener", "result"}),
		sources: make(map[*Source]struct{}),
	}
	if err := reg.Register(m); err != nil {
		return nil, fmt.Errorf("registering tls metrics: %w", err)
	}
	return m, nil
}

func (m *Metrics) attach(s *Source) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sources[s] = struct{}{}
}

func (m *Metrics) detach(s *Source) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.sources, s)
}

// reloaded counts one pair's reload result.
func (m *Metrics) reloaded(listener, result string) {
	if m != nil {
		m.reloads.WithLabelValues(listener, result).Inc()
	}
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.desc
	m.reloads.Describe(ch)
}

// Collect implements prometheus.Collector. Where one listener and name
// occur twice (an RSA and an ECDSA certificate, or two generations during
// a reload), the certificate that expires first is reported.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.reloads.Collect(ch)
	type key struct{ listener, name string }
	m.mu.Lock()
	sources := make([]*Source, 0, len(m.sources))
	for s := range m.sources {
		sources = append(sources, s)
	}
	m.mu.Unlock()

	soonest := make(map[key]float64)
	for _, s := range sources {
		now := s.clock.Now()
		for _, e := range s.certs.Load().entries {
			k := key{s.opts.Listener, e.name}
			left := e.leaf.NotAfter.Sub(now).Seconds()
			if v, ok := soonest[k]; !ok || left < v {
				soonest[k] = left
			}
		}
	}
	keys := make([]key, 0, len(soonest))
	for k := range soonest {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].listener != keys[j].listener {
			return keys[i].listener < keys[j].listener
		}
		return keys[i].name < keys[j].name
	})
	for _, k := range keys {
		ch <- prometheus.MustNewConstMetric(m.desc, prometheus.GaugeValue, soonest[k], k.listener, k.name)
	}
}

var _ prometheus.Collector = (*Metrics)(nil)
