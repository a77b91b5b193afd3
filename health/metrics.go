package health

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the health counters of every pool in a process. Create them
// once per registry and share them between Trackers: the pool is a label.
type Metrics struct {
	transitions *prometheus.CounterVec
	ejections   *prometheus.CounterVec
}

// NewMetrics registers the health metrics on reg. A nil reg leaves them
// unregistered, which is handy in tests that do not read them.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "azimuth_backend_health_transitions_total",
			Help: "Backend health state changes, by the state entered.",
		}, []string{"pool", "backend", "zone", "to"}),
		ejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "azimuth_backend_ejections_total",
			Help: "Backends ejected by passive outlier detection.",
		}, []string{"pool", "backend", "zone"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.transitions, m.ejections} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, fmt.Errorf("registering health metrics: %w (create Metrics once per registry)", err)
			}
			return nil, fmt.Errorf("registering health metrics: %w", err)
		}
	}
	return m, nil
}

// forgetBackend deletes every series of a backend that left its pool, so
// the exposition does not grow with churn.
func (m *Metrics) forgetBackend(pool, addr string) {
	l := prometheus.Labels{"pool": pool, "backend": addr}
	m.transitions.DeletePartialMatch(l)
	m.ejections.DeletePartialMatch(l)
}

// forgetPool deletes every series of a pool.
func (m *Metrics) forgetPool(pool string) {
	l := prometheus.Labels{"pool": pool}
	m.transitions.DeletePartialMatch(l)
	m.ejections.DeletePartialMatch(l)
}
