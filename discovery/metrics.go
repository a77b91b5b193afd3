package discovery

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the Consul-side series, labelled by pool. Every watcher on
// one registerer shares the same vectors: the first registers them, later
// ones reuse what is registered.
type metrics struct {
	lastSuccess *prometheus.GaugeVec
	errors      *prometheus.CounterVec
	syncState   *prometheus.GaugeVec
	updates     *prometheus.CounterVec
	backends    *prometheus.GaugeVec
}

// newMetrics registers (or finds) the series on reg.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	var m metrics
	var err error
	if m.lastSuccess, err = register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "azimuth_consul_last_success_timestamp_seconds",
		Help: "Unix time of the last successful Consul query for the pool.",
	}, []string{"pool"})); err != nil {
		return nil, err
	}
	if m.errors, err = register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "azimuth_consul_errors_total",
		Help: "Failed Consul queries for the pool.",
	}, []string{"pool"})); err != nil {
		return nil, err
	}
	if m.syncState, err = register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "azimuth_consul_sync_state",
		Help: "1 when the pool's last Consul query succeeded, 0 otherwise.",
	}, []string{"pool"})); err != nil {
		return nil, err
	}
	if m.updates, err = register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "azimuth_consul_updates_total",
		Help: "Backend sets from Consul handed to the pool (unchanged answers are not counted).",
	}, []string{"pool"})); err != nil {
		return nil, err
	}
	if m.backends, err = register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "azimuth_consul_backends",
		Help: "Backends in the pool's last set from Consul.",
	}, []string{"pool"})); err != nil {
		return nil, err
	}
	return &m, nil
}

// register registers c on reg, or returns the collector already registered
// under the same description.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	var zero C
	return zero, fmt.Errorf("registering consul metrics: %w", err)
}
