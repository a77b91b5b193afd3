package scenario

import (
	"maps"
	"slices"
	"strings"
	"time"
)

// printer is WriteText's formatted writer, which keeps the first error.
type printer func(format string, args ...any)

// writeConfig shows the pool azimuth ran with, so a reader sees whether
// the run was defaults-only.
func (r *Report) writeConfig(p printer) {
	if r.Config == "" {
		return
	}
	if r.Scenario.Azimuth.DefaultsOnly() {
		p("azimuth ran with its defaults: a pool of only a name and backends:\n")
	} else {
		p("azimuth ran with (the pool of its generated config; keys not shown are its defaults):\n")
	}
	for _, line := range strings.Split(strings.TrimRight(PoolSection(r.Config), "\n"), "\n") {
		p("  | %s\n", line)
	}
}

func (r *Report) writeMethodPhases(p printer) {
	if len(r.MethodPhases) == 0 {
		return
	}
	p("%-8s %-6s %9s %10s %10s %9s %9s %9s\n", "phase", "method", "sent", "succeeded", "success", "p50", "p99", "max")
	for _, m := range r.MethodPhases {
		p("%-8s %-6s %9d %10d %10s %9s %9s %9s\n", m.Phase, m.Method, m.Sent, m.Succeeded, m.SuccessPercent, ms(m.P50), ms(m.P99), ms(m.Max))
	}
}

func (r *Report) writeFaultEvents(p printer) {
	for _, e := range r.FaultEvents {
		p("fault      %.2fs-%.2fs %s: %s (ended by %s)\n", e.AtSeconds, e.EndSeconds, e.Target, e.Fault, e.EndedBy)
		if e.Detected {
			p("           detected after %s; ", durMS(*e.DetectedAfterMS))
		} else {
			p("           not detected; ")
		}
		p("hits during %d, after detection %d; per-try ", e.HitsDuring, e.HitsAfterDetection)
		if e.PerTryAtStartMS == nil {
			p("not reported\n")
		} else {
			p("%s at start %s, highest %s\n", e.PerTryMode, durMS(*e.PerTryAtStartMS), durMS(*e.PerTryMaxMS))
		}
	}
}

// writeBackendSide reports what the backends saw: extra attempts, requests
// delivered twice, and the closing zone shares.
func (r *Report) writeBackendSide(p printer) {
	a := r.Attempts
	if a.Whole.Sent == 0 && a.Whole.BackendHits == 0 {
		return
	}
	p("extra attempts per request: whole run %.3f (%d backend hits for %d sent)", a.Whole.ExtraAttemptsPerRequest, a.Whole.BackendHits, a.Whole.Sent)
	if w := a.FaultWindow; w != nil {
		p(", fault window %.3f (%d for %d)", w.ExtraAttemptsPerRequest, w.BackendHits, w.Sent)
	}
	p("\n")
	d := r.Duplicates
	if d.IDHeader != "" {
		p("delivered twice (by %s): POST/PATCH %d (must be 0); GET %d (retries and hedges)", d.IDHeader, d.NonIdempotent, d.GET)
		for _, m := range slices.Sorted(maps.Keys(d.ByMethod)) {
			n := d.ByMethod[m]
			p("; %s %d IDs, %d twice or more", m, n.IDs, n.Duplicated)
		}
		p("\n")
	}
	z := r.ZoneShares
	p("zone share of backend hits, %.1fs-%.1fs:", z.FromSeconds, z.ToSeconds)
	for _, zone := range r.Scenario.Fleet.Zones {
		own := ""
		if zone == z.OwnZone {
			own = " (own)"
		}
		p(" %s%s %.1f%%", zone, own, 100*z.Shares[zone])
	}
	p("\n")
}

func (r *Report) writeMetrics(p printer) {
	m := r.Metrics
	if !m.Scraped {
		if m.Error != "" {
			p("azimuth metrics unavailable: %s\n", m.Error)
		}
		return
	}
	p("azimuth    retries ")
	if m.RetriesTotal == nil {
		p("n/a")
	} else {
		p("%.0f", *m.RetriesTotal)
	}
	p("; hedges %s; retries refused %s\n", counts(m.Hedges), counts(m.RetriesRefused))
}

// counts formats a labelled counter, "n/a" when it was not exported.
func counts(m map[string]float64) string {
	if m == nil {
		return "n/a"
	}
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, k+":"+f(m[k]))
	}
	return strings.Join(parts, " ")
}

func (r *Report) writeProbes(p printer) {
	for _, pr := range r.Probes {
		p("probe      %.2fs %s %s: ", pr.AtSeconds, pr.Method, pr.Path)
		if pr.Error != "" {
			p("failed after %s: %s\n", durMS(pr.LatencyMS), pr.Error)
			continue
		}
		p("%d in %s from %s\n", pr.Status, durMS(pr.LatencyMS), pr.Backend)
	}
}

func (r *Report) writeStatus(p printer) {
	s := r.Status
	if s.Polls == 0 && s.Errors == 0 {
		return
	}
	p("status     %d polls of /status", s.Polls)
	if s.Errors > 0 {
		p(", %d failed (last: %s)", s.Errors, s.LastError)
	}
	p("; per-try reported: %t\n", s.PerTryReported)
	seen := map[string]bool{}
	for _, c := range s.Changes {
		if !seen[c.Address] {
			seen[c.Address] = true // its first state, not a change
			continue
		}
		p("           %.2fs %s (%s): %s, available %t\n", c.AtSeconds, c.Address, c.Zone, c.State, c.Available)
	}
}

func durMS(v float64) string {
	return time.Duration(v * float64(time.Millisecond)).Round(100 * time.Microsecond).String()
}
