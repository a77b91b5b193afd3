package scenario

import (
	"fmt"
	"html"
	"strings"
)

// htmlConfig shows the pool azimuth ran with, first, so a reader sees at
// once whether the run was defaults-only.
func (r *Report) htmlConfig() string {
	if r.Config == "" {
		return ""
	}
	note := "The pool sets keys of its own (below); every other key is the proxy's default."
	if r.Scenario.Azimuth.DefaultsOnly() {
		note = "The pool has only a name and backends: every setting is the proxy's default."
	}
	return fmt.Sprintf("<h2>What azimuth ran with</h2>\n<p>%s</p>\n<pre>%s</pre>", html.EscapeString(note), html.EscapeString(PoolSection(r.Config)))
}

// htmlTables are the per-method phases and the fault events as tables.
func (r *Report) htmlTables() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	if len(r.MethodPhases) > 0 {
		p("<h2>Requests by phase and method</h2>\n<table><tr><th class=l>phase</th><th>seconds</th><th class=l>method</th><th>sent</th><th>succeeded</th><th>success</th><th>p50</th><th>p99</th><th>max</th></tr>\n")
		for _, m := range r.MethodPhases {
			class := ""
			if m.Succeeded < m.Sent {
				class = " class=bad"
			}
			p("<tr><td class=l>%s</td><td>%d-%d</td><td class=l>%s</td><td>%d</td><td>%d</td><td%s>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>\n",
				html.EscapeString(m.Phase), m.From, m.To, html.EscapeString(m.Method), m.Sent, m.Succeeded, class, m.SuccessPercent, ms(m.P50), ms(m.P99), ms(m.Max))
		}
		p("</table>\n")
	}
	if len(r.FaultEvents) > 0 {
		p("<h2>Faults</h2>\n<table><tr><th class=l>target</th><th class=l>fault</th><th>from</th><th>to</th><th>detected after</th><th>hits during</th><th>hits after detection</th><th>per-try at start</th><th>highest per-try</th></tr>\n")
		for _, e := range r.FaultEvents {
			det, start, highest := "not detected", "n/a", "n/a"
			if e.Detected {
				det = durMS(*e.DetectedAfterMS)
			}
			if e.PerTryAtStartMS != nil {
				start, highest = e.PerTryMode+" "+durMS(*e.PerTryAtStartMS), durMS(*e.PerTryMaxMS)
			}
			p("<tr><td class=l>%s</td><td class=l>%s</td><td>%.2fs</td><td>%.2fs</td><td>%s</td><td>%d</td><td>%d</td><td>%s</td><td>%s</td></tr>\n",
				html.EscapeString(e.Target), html.EscapeString(e.Fault), e.AtSeconds, e.EndSeconds, det, e.HitsDuring, e.HitsAfterDetection, html.EscapeString(start), highest)
		}
		p("</table>\n")
	}
	return b.String()
}
