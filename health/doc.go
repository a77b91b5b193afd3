// Package health decides whether each backend of a pool may take traffic.
// It writes backend states that the balancer reads lock-free, and never sits
// on a request's path except for one cheap call, Detector.Observe.
//
// Three parts share one Tracker per pool:
//
//   - Checker probes every backend over HTTP every Interval (±10% jitter)
//     and moves it Down after Fall failures in a row and Up after Rise
//     passes. A backend that joins a serving pool waits in Pending until
//     its first check.
//   - Detector counts failed attempts reported by the proxy and ejects a
//     backend after ConsecutiveFailures in a row, for a back-off that grows
//     with its recent ejections, never ejecting more than MaxEjectedPercent
//     of the pool at once.
//   - AdminHandler lets an operator drain and re-enable zones and backends.
//
// The Tracker serialises every state change they make, logs it once with
// its reason and counts it, and keeps per-backend counters keyed by
// *balancer.Backend, so they survive reloads exactly as long as the
// balancer keeps the Backend. Zone health needs no state of its own: the
// balancer's Pool.Status computes each zone's healthy share from the states
// written here, and its spill and panic rules read the same states.
//
// Precedence: an active Down beats an ejection; an active pass lifts an
// ejection; passive detection only ejects a backend that is Up.
//
// Wiring for one pool (Metrics are created once per registry and shared):
//
//	m, err := health.NewMetrics(reg)
//	pool := registry.Pool(name, balancer.Options{ActiveChecks: active != nil, ...})
//	t := health.NewTracker(pool, logger, m)
//	chk, err := health.NewChecker(t, activeOpts) // only with active checks
//	det, err := health.NewDetector(t, passiveOpts)
//	go chk.Run(ctx)
//	go det.Run(ctx)
//	// proxy, after every attempt: det.Observe(b, failed)
//	// reload: chk.Configure(o); det.Configure(o)
//	// admin: mux.Handle("/pools/", health.AdminHandler(registry, logger, nil))
//	// status: t.Infos()
//	// pool dropped: cancel ctx, wait for Run to return, then t.Close()
package health
