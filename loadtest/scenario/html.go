package scenario

import (
	"fmt"
	"html"
	"io"
	"strings"
	"time"
)

// Chart geometry, in SVG user units.
const (
	chartW, chartH = 760, 220
	padL, padR     = 60, 110
	padT, padB     = 28, 30
)

// palette colors series and zones; it repeats past its end.
var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"}

// chart is one time-series chart over the run's seconds.
type chart struct {
	title   string
	seconds int
	yMax    float64
	yFmt    func(float64) string
	window  [2]int // shaded fault window in seconds; equal ends for none
	series  []series
	stacked bool // draw series as stacked bars
}

type series struct {
	name   string
	values []float64
}

func (c chart) x(sec float64) float64 {
	return padL + sec*(chartW-padL-padR)/float64(max(c.seconds, 1))
}

func (c chart) y(v float64) float64 {
	h := float64(chartH - padT - padB)
	return float64(chartH-padB) - min(v, c.yMax)/c.yMax*h
}

func (c chart) svg() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	if c.yMax <= 0 {
		c.yMax = 1
	}
	p(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="%s">`, chartW, chartH, chartW, chartH, html.EscapeString(c.title))
	p(`<text x="%d" y="18" font-size="14" font-weight="bold">%s</text>`, padL, html.EscapeString(c.title))
	if c.window[1] > c.window[0] {
		p(`<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="#fdd" /><text x="%.1f" y="%d" font-size="10" fill="#a00">fault</text>`,
			c.x(float64(c.window[0])), padT, c.x(float64(c.window[1]))-c.x(float64(c.window[0])), chartH-padT-padB,
			c.x(float64(c.window[0]))+3, padT+11)
	}
	for i := 0; i <= 4; i++ {
		v := c.yMax * float64(i) / 4
		y := c.y(v)
		p(`<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd" /><text x="%d" y="%.1f" font-size="10" text-anchor="end">%s</text>`,
			padL, chartW-padR, y, y, padL-4, y+3, html.EscapeString(c.yFmt(v)))
	}
	step := max(1, c.seconds/10)
	for s := 0; s <= c.seconds; s += step {
		p(`<text x="%.1f" y="%d" font-size="10" text-anchor="middle">%ds</text>`, c.x(float64(s)), chartH-padB+14, s)
	}
	p(`<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="#000" />`, padL, chartW-padR, chartH-padB, chartH-padB)
	if c.stacked {
		base := make([]float64, c.seconds)
		barW := c.x(1) - c.x(0)
		for i, s := range c.series {
			for sec := 0; sec < c.seconds && sec < len(s.values); sec++ {
				y0, y1 := c.y(base[sec]), c.y(base[sec]+s.values[sec])
				p(`<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%ds %s: %.0f</title></rect>`,
					c.x(float64(sec))+0.5, y1, max(barW-1, 0.5), y0-y1, palette[i%len(palette)], sec, html.EscapeString(s.name), s.values[sec])
				base[sec] += s.values[sec]
			}
		}
	} else {
		for i, s := range c.series {
			var pts []string
			for sec, v := range s.values {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", c.x(float64(sec)+0.5), c.y(v)))
			}
			p(`<polyline fill="none" stroke="%s" stroke-width="2" points="%s" />`, palette[i%len(palette)], strings.Join(pts, " "))
		}
	}
	for i, s := range c.series {
		y := padT + 14*i + 8
		p(`<rect x="%d" y="%d" width="10" height="10" fill="%s" /><text x="%d" y="%d" font-size="11">%s</text>`,
			chartW-padR+10, y-8, palette[i%len(palette)], chartW-padR+24, y+1, html.EscapeString(s.name))
	}
	p(`</svg>`)
	return b.String()
}

// WriteHTML writes a self-contained HTML report: the summary and three
// inline SVG charts (latency percentiles, success rate, traffic per zone)
// with the fault window shaded. It loads nothing from anywhere.
func (r *Report) WriteHTML(w io.Writer) error {
	res := r.Result
	n := len(res.Timeline)
	window := [2]int{}
	if r.HasWindow {
		window = [2]int{r.WindowFrom, r.WindowTo}
	}
	p50 := make([]float64, n)
	p99 := make([]float64, n)
	success := make([]float64, n)
	var maxLat float64
	for i, s := range res.Timeline {
		p50[i] = float64(s.P50) / 1000
		p99[i] = float64(s.P99) / 1000
		maxLat = max(maxLat, p99[i])
		success[i] = 100
		if s.Requests > 0 {
			success[i] = 100 * float64(s.Requests-s.Failed) / float64(s.Requests)
		}
	}
	msFmt := func(v float64) string {
		return (time.Duration(v * float64(time.Millisecond))).Round(100 * time.Microsecond).String()
	}
	latency := chart{title: "Latency per second (by intended send time)", seconds: n, yMax: maxLat * 1.1, yFmt: msFmt, window: window,
		series: []series{{"p50", p50}, {"p99", p99}}}
	minSuccess := 100.0
	for _, v := range success {
		minSuccess = min(minSuccess, v)
	}
	succ := chart{title: "Success rate per second", seconds: n, yMax: 100, yFmt: func(v float64) string { return fmt.Sprintf("%.0f%%", v) }, window: window,
		series: []series{{"success", success}}}
	var zoneSeries []series
	var maxReq float64
	for _, s := range res.Timeline {
		maxReq = max(maxReq, float64(s.Requests))
	}
	for _, z := range r.Scenario.Fleet.Zones {
		v := make([]float64, n)
		for i, s := range res.Timeline {
			v[i] = float64(s.Zones[z])
		}
		zoneSeries = append(zoneSeries, series{"zone " + z, v})
	}
	zones := chart{title: "Responses per zone per second", seconds: n, yMax: maxReq * 1.1, yFmt: func(v float64) string { return fmt.Sprintf("%.0f", v) },
		window: window, series: zoneSeries, stacked: true}

	var text strings.Builder
	if err := r.WriteText(&text); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>azload: %s</title>
<style>body{font-family:system-ui,sans-serif;margin:2em;color:#222}pre{background:#f6f6f6;padding:1em;overflow:auto}svg{display:block;margin:1em 0}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.2em .6em;text-align:right}th{background:#f0f0f0}td.l,th.l{text-align:left}.bad{color:#a00;font-weight:bold}</style>
</head><body>
<h1>azload: %s</h1>
<p>%s %s through azimuth (zone %s), %d zones × %d backends; lowest success in one second: %.2f%%.</p>
%s
%s
%s
%s
%s
<h2>Summary</h2>
<pre>%s</pre>
</body></html>
`, html.EscapeString(r.Scenario.Name), html.EscapeString(r.Scenario.Name),
		html.EscapeString(res.Method), html.EscapeString(res.URL), html.EscapeString(r.Scenario.Azimuth.Zone),
		len(r.Scenario.Fleet.Zones), r.Scenario.Fleet.PerZone, minSuccess,
		r.htmlConfig(), latency.svg(), succ.svg(), zones.svg(), r.htmlTables(), html.EscapeString(text.String()))
	return err
}
