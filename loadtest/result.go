package loadtest

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// Latency is a latency summary in microseconds, the unit the JSON output
// uses so scripts need not parse durations.
type Latency struct {
	Count int64   `json:"count"`
	Mean  float64 `json:"mean_us"`
	P50   int64   `json:"p50_us"`
	P90   int64   `json:"p90_us"`
	P99   int64   `json:"p99_us"`
	P999  int64   `json:"p999_us"`
	Max   int64   `json:"max_us"`
}

func summarize(h *hdr.Histogram) Latency {
	if h == nil || h.TotalCount() == 0 {
		return Latency{}
	}
	return Latency{
		Count: h.TotalCount(),
		Mean:  h.Mean(),
		P50:   h.ValueAtQuantile(50),
		P90:   h.ValueAtQuantile(90),
		P99:   h.ValueAtQuantile(99),
		P999:  h.ValueAtQuantile(99.9),
		Max:   h.Max(),
	}
}

// Second is one second of the timeline, by intended send time in open loop
// and by actual send time in closed loop.
type Second struct {
	Second   int              `json:"second"`
	Requests int64            `json:"requests"`
	Failed   int64            `json:"failed"`
	P50      int64            `json:"p50_us"`
	P99      int64            `json:"p99_us"`
	Zones    map[string]int64 `json:"zones,omitempty"`

	hist *hdr.Histogram
}

// Result is everything a run measured.
type Result struct {
	URL         string   `json:"url"`
	Method      string   `json:"method"`
	Protocol    Protocol `json:"protocol"`
	Mode        string   `json:"mode"`
	Rate        float64  `json:"rate,omitempty"`
	Concurrency int      `json:"concurrency"`
	// Workers is how many workers ran: Concurrency in closed loop, as many
	// as the schedule needed (at most Concurrency) in open loop.
	Workers   int           `json:"workers"`
	Start     time.Time     `json:"start"`
	Elapsed   time.Duration `json:"elapsed_ns"`
	Requests  int64         `json:"requests"`
	Succeeded int64         `json:"succeeded"`
	Failed    int64         `json:"failed"`
	// Throughput is completed requests per second of elapsed time.
	Throughput float64 `json:"throughput_rps"`
	Latency    Latency `json:"latency"`
	// Status counts responses by status code.
	Status map[string]int64 `json:"status"`
	// Errors counts transport failures by class (timeout, refused, reset,
	// tls, other).
	Errors map[string]int64 `json:"errors"`
	// Backends and Zones count responses by their X-Backend and
	// X-Backend-Zone headers, when the target sets them.
	Backends map[string]int64 `json:"backends,omitempty"`
	Zones    map[string]int64 `json:"zones,omitempty"`
	Timeline []Second         `json:"timeline"`

	hist *hdr.Histogram
}

// mergeShards folds the shards into one Result.
func mergeShards(r *Result, shards []*shard) {
	r.hist = newHist()
	r.Status = map[string]int64{}
	r.Errors = map[string]int64{}
	r.Backends = map[string]int64{}
	r.Zones = map[string]int64{}
	var secs []*second
	for _, s := range shards {
		s.mu.Lock()
		r.hist.Merge(s.hist)
		r.Requests += s.requests
		r.Failed += s.failed
		for code, n := range s.status {
			if n > 0 {
				r.Status[strconv.Itoa(code)] += n
			}
		}
		for c := ClassTimeout; c < numClasses; c++ {
			if n := s.classes[c]; n > 0 {
				r.Errors[c.String()] += n
			}
		}
		for k, n := range s.backends {
			r.Backends[k] += n
		}
		for k, n := range s.zones {
			r.Zones[k] += n
		}
		for i, sec := range s.seconds {
			for len(secs) <= i {
				secs = append(secs, &second{hist: newSecHist(), zones: map[string]int64{}})
			}
			if sec == nil {
				continue
			}
			secs[i].requests += sec.requests
			secs[i].failed += sec.failed
			secs[i].hist.Merge(sec.hist)
			for k, n := range sec.zones {
				secs[i].zones[k] += n
			}
		}
		s.mu.Unlock()
	}
	r.Succeeded = r.Requests - r.Failed
	r.Latency = summarize(r.hist)
	if r.Elapsed > 0 {
		r.Throughput = float64(r.Requests) / r.Elapsed.Seconds()
	}
	r.Timeline = make([]Second, len(secs))
	for i, sec := range secs {
		r.Timeline[i] = Second{
			Second: i, Requests: sec.requests, Failed: sec.failed,
			P50: sec.hist.ValueAtQuantile(50), P99: sec.hist.ValueAtQuantile(99),
			Zones: sec.zones, hist: sec.hist,
		}
	}
}

// Window summarizes the seconds in [from, to) of the timeline: requests,
// failures and latency of the requests sent in that window.
func (r *Result) Window(from, to int) (requests, failed int64, lat Latency) {
	h := newSecHist()
	for _, s := range r.Timeline {
		if s.Second < from || s.Second >= to {
			continue
		}
		requests += s.Requests
		failed += s.Failed
		if s.hist != nil {
			h.Merge(s.hist)
		}
	}
	return requests, failed, summarize(h)
}

// SuccessRate is the share of requests that succeeded, 0 for an empty run.
func (r *Result) SuccessRate() float64 {
	if r.Requests == 0 {
		return 0
	}
	return float64(r.Succeeded) / float64(r.Requests)
}

func us(v int64) string {
	return (time.Duration(v) * time.Microsecond).Round(10 * time.Microsecond).String()
}

// WriteText writes the human summary of the run.
func (r *Result) WriteText(w io.Writer) error {
	ew := &errWriter{w: w}
	ew.printf("%s %s (%s, %s", r.Method, r.URL, r.Protocol, r.Mode)
	if r.Rate > 0 {
		ew.printf(" at %g req/s", r.Rate)
	}
	ew.printf(", %d of at most %d workers)\n", r.Workers, r.Concurrency)
	ew.printf("  requests   %d in %s, %.1f req/s\n", r.Requests, r.Elapsed.Round(time.Millisecond), r.Throughput)
	ew.printf("  succeeded  %d (%.3f%%)\n", r.Succeeded, 100*r.SuccessRate())
	ew.printf("  latency    p50 %s  p90 %s  p99 %s  p99.9 %s  max %s\n",
		us(r.Latency.P50), us(r.Latency.P90), us(r.Latency.P99), us(r.Latency.P999), us(r.Latency.Max))
	ew.printf("  status    ")
	for _, k := range slices.Sorted(maps.Keys(r.Status)) {
		ew.printf(" %s:%d", k, r.Status[k])
	}
	ew.printf("\n")
	if len(r.Errors) > 0 {
		ew.printf("  errors    ")
		for c := ClassTimeout; c < numClasses; c++ {
			if n := r.Errors[c.String()]; n > 0 {
				ew.printf(" %s:%d", c, n)
			}
		}
		ew.printf("\n")
	}
	if len(r.Zones) > 0 {
		ew.printf("  zones     ")
		for _, k := range slices.Sorted(maps.Keys(r.Zones)) {
			ew.printf(" %s:%d", k, r.Zones[k])
		}
		ew.printf("\n")
	}
	return ew.err
}

// errWriter keeps the first write error so a report can be written with
// plain calls and checked once.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, args...)
	}
}
