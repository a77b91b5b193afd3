// Package health decides whether each backend of a pool may take traffic.
// It writes backend states that the balancer reads lock-free, and never sits
// on a request's path except for one cheap call, Detector.Observe.
//
// Three parts share one Tracker per pool:
//
//   - Checker probes every backend over HTTP on an interval with jitter and
//     moves it Down after Fall failures in a row and Up after Rise passes.
//   - Detector counts failed attempts reported by the proxy and ejects a
//     backend after ConsecutiveFailures in a row, for a back-off that grows
//     with its recent ejections, never ejecting more than MaxEjectedPercent
//     of the pool at once.
//   - AdminHandler lets an operator drain and re-enable zones and backends.
//
// The Tracker serialises every state change it makes, logs it once with its
// reason and counts it, and keeps per-backend counters keyed by *Backend, so
// they survive reloads exactly as long as the balancer keeps the Backend.
//
// Precedence: an active Down beats an ejection; an active pass un-ejects;
// passive detection only ejects a backend that is Up.
//
// Wiring for one pool (the Metrics are shared by every pool of a process):
//
//	m, err := health.NewMetrics(reg)
//	t := health.NewTracker(pool, logger, m)
//	chk, err := health.NewChecker(t, activeOpts) // only if the pool has active checks
//	det, err := health.NewDetector(t, passiveOpts)
//	go chk.Run(ctx)
//	go det.Run(ctx)
//	// proxy: det.Observe(b, failed) after every attempt
//	// reload: chk.Configure(o), det.Configure(o)
//	// pool dropped: cancel ctx, then t.Close()
package health
