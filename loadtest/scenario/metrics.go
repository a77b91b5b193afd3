package scenario

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// AzimuthMetrics are the counters read from azimuth's /metrics after the
// load. A series azimuth does not export is nil, not zero, so a report
// can tell "none happened" from "not measured".
type AzimuthMetrics struct {
	// Scraped is true when /metrics answered; Error says why not.
	Scraped bool   `json:"scraped"`
	Error   string `json:"error,omitempty"`
	// RetriesTotal sums azimuth_retries_total over every label.
	RetriesTotal *float64 `json:"retries_total"`
	// RetriesByCause sums azimuth_retries_total by its cause label.
	RetriesByCause map[string]float64 `json:"retries_by_cause"`
	// Hedges sums azimuth_hedges_total by its result label (won, lost).
	Hedges map[string]float64 `json:"hedges_total"`
	// RetriesRefused sums azimuth_retries_refused_total by its reason
	// label (budget, not_replayable, ...).
	RetriesRefused map[string]float64 `json:"retries_refused_total"`
}

// promSample is one line of the Prometheus text format.
type promSample struct {
	labels map[string]string
	value  float64
}

// scrapeMetrics reads azimuth's /metrics on admin.
func scrapeMetrics(admin string) AzimuthMetrics {
	client := &http.Client{Timeout: 2 * time.Second}
	defer client.CloseIdleConnections()
	resp, err := client.Get("http://" + admin + "/metrics")
	if err != nil {
		return AzimuthMetrics{Error: fmt.Sprintf("scraping metrics: %v", err)}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return AzimuthMetrics{Error: fmt.Sprintf("scraping metrics: status %d", resp.StatusCode)}
	}
	m, err := parseMetrics(resp.Body)
	if err != nil {
		return AzimuthMetrics{Error: fmt.Sprintf("scraping metrics: %v", err)}
	}
	return m
}

// parseMetrics reads the series the report needs from the text format.
func parseMetrics(r io.Reader) (AzimuthMetrics, error) {
	series, declared, err := parseProm(r, "azimuth_retries_total", "azimuth_hedges_total", "azimuth_retries_refused_total")
	if err != nil {
		return AzimuthMetrics{}, err
	}
	m := AzimuthMetrics{Scraped: true}
	if declared["azimuth_retries_total"] {
		total := 0.0
		m.RetriesByCause = sumBy(series["azimuth_retries_total"], "cause")
		for _, v := range m.RetriesByCause {
			total += v
		}
		m.RetriesTotal = &total
	}
	if declared["azimuth_hedges_total"] {
		m.Hedges = sumBy(series["azimuth_hedges_total"], "result")
	}
	if declared["azimuth_retries_refused_total"] {
		m.RetriesRefused = sumBy(series["azimuth_retries_refused_total"], "reason")
	}
	return m, nil
}

// parseRetries sums azimuth_retries_total by cause; ok is false when the
// series is absent.
func parseRetries(r io.Reader) (map[string]float64, bool) {
	m, err := parseMetrics(r)
	if err != nil || m.RetriesTotal == nil {
		return nil, false
	}
	return m.RetriesByCause, true
}

// sumBy sums samples by one label's value ("unknown" when missing).
func sumBy(samples []promSample, label string) map[string]float64 {
	out := map[string]float64{}
	for _, s := range samples {
		k := s.labels[label]
		if k == "" {
			k = "unknown"
		}
		out[k] += s.value
	}
	return out
}

// parseProm reads the samples of the named series from Prometheus text
// exposition; declared reports the series that have a TYPE line or a
// sample (a counter with no child yet is declared but has no samples).
func parseProm(r io.Reader, names ...string) (map[string][]promSample, map[string]bool, error) {
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	series, declared := map[string][]promSample{}, map[string]bool{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			if name, _, _ := strings.Cut(rest, " "); want[name] {
				declared[name] = true
			}
			continue
		}
		if line == "" || line[0] == '#' {
			continue
		}
		name, labels, value, ok := parsePromLine(line)
		if !ok || !want[name] {
			continue
		}
		declared[name] = true
		series[name] = append(series[name], promSample{labels: labels, value: value})
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("reading metrics: %w", err)
	}
	return series, declared, nil
}

// parsePromLine reads `name{k="v",...} value [timestamp]`.
func parsePromLine(line string) (name string, labels map[string]string, value float64, ok bool) {
	end := strings.IndexAny(line, "{ ")
	if end <= 0 {
		return "", nil, 0, false
	}
	name, rest := line[:end], line[end:]
	labels = map[string]string{}
	if strings.HasPrefix(rest, "{") {
		rest = rest[1:]
		for {
			rest = strings.TrimLeft(rest, " ,")
			if strings.HasPrefix(rest, "}") {
				rest = rest[1:]
				break
			}
			k, after, found := strings.Cut(rest, "=")
			if !found || !strings.HasPrefix(after, `"`) {
				return "", nil, 0, false
			}
			v, tail, good := unquoteLabel(after[1:])
			if !good {
				return "", nil, 0, false
			}
			labels[strings.TrimSpace(k)] = v
			rest = tail
		}
	}
	fields := strings.Fields(rest)
	if len(fields) == 0 {
		return "", nil, 0, false
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return "", nil, 0, false
	}
	return name, labels, v, true
}

// unquoteLabel reads a label value up to its closing quote, undoing the
// format's escapes (\\, \", \n); tail is what follows the quote.
func unquoteLabel(s string) (value, tail string, ok bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			return b.String(), s[i+1:], true
		case '\\':
			if i+1 >= len(s) {
				return "", "", false
			}
			i++
			if s[i] == 'n' {
				b.WriteByte('\n')
			} else {
				b.WriteByte(s[i])
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", "", false
}
