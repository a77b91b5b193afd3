package edgetls

import "github.com/prometheus/client_golang/prometheus"

// expiryCollector exports azimuth_tls_certificate_expiry_seconds for one
// listener. It reads the current snapshot at scrape time, so the value is
// always "seconds until NotAfter" now, and a replaced certificate's label
// set disappears with the snapshot that held it: there is nothing to delete
// by hand and nothing to go stale. The listener is a constant label so that
// several listeners register on one Registerer.
type expiryCollector struct {
	desc *prometheus.Desc
	src  *Source
}

func newExpiryCollector(listener string, src *Source) *expiryCollector {
	return &expiryCollector{
		desc: prometheus.NewDesc(
			"azimuth_tls_certificate_expiry_seconds",
			"Seconds until the served certificate's NotAfter; name is its first DNS SAN or CN.",
			[]string{"name"}, prometheus.Labels{"listener": listener}),
		src: src,
	}
}

// Describe implements prometheus.Collector.
func (c *expiryCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector. Two certificates with one name
// (say an RSA and an ECDSA one) report the one that expires first.
func (c *expiryCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.src.clock.Now()
	soonest := make(map[string]float64)
	var order []string
	for _, e := range c.src.certs.Load().entries {
		left := e.leaf.NotAfter.Sub(now).Seconds()
		if v, ok := soonest[e.name]; !ok || left < v {
			if !ok {
				order = append(order, e.name)
			}
			soonest[e.name] = left
		}
	}
	for _, name := range order {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, soonest[name], name)
	}
}

var _ prometheus.Collector = (*expiryCollector)(nil)
