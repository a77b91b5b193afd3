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
	// Methods is the run per method: with a mix, one entry per method;
	// without, the run's one method. Unlike the run's totals, a method's
	// success is a 2xx response only.
	Methods map[string]*MethodResult `json:"methods"`

	hist *hdr.Histogram
}

// MethodResult is what the requests of one method measured. Succeeded
// counts 2xx responses; everything else (3xx included) is Failed.
type MethodResult struct {
	Requests  int64            `json:"requests"`
	Succeeded int64            `json:"succeeded"`
	Failed    int64            `json:"failed"`
	Latency   Latency          `json:"latency"`
	Status    map[string]int64 `json:"status"`
	Errors    map[string]int64 `json:"errors"`
	Timeline  []MethodSecond   `json:"timeline"`
}

// MethodSecond is one second of a method's timeline.
type MethodSecond struct {
	Second    int   `json:"second"`
	Requests  int64 `json:"requests"`
	Succeeded int64 `json:"succeeded"`
	P50       int64 `json:"p50_us"`
	P99       int64 `json:"p99_us"`
	Max       int64 `json:"max_us"`

	hist *hdr.Histogram
}

// tally is the merge of a set of shards (or of their per-method parts).
type tally struct {
	hist                        *hdr.Histogram
	requests, failed, redirects int64
	status, errors              map[string]int64
	backends, zones             map[string]int64
	secs                        []*second
}

func newTally() *tally {
	return &tally{hist: newHist(), status: map[string]int64{}, errors: map[string]int64{},
		backends: map[string]int64{}, zones: map[string]int64{}}
}

// add merges s; the caller holds the lock of the shard s belongs to.
func (t *tally) add(s *shard) {
	t.hist.Merge(s.hist)
	t.requests += s.requests
	t.failed += s.failed
	t.redirects += s.redirects
	for code, n := range s.status {
		if n > 0 {
			t.status[strconv.Itoa(code)] += n
		}
	}
	for c := ClassTimeout; c < numClasses; c++ {
		if n := s.classes[c]; n > 0 {
			t.errors[c.String()] += n
		}
	}
	for k, n := range s.backends {
		t.backends[k] += n
	}
	for k, n := range s.zones {
		t.zones[k] += n
	}
	for i, sec := range s.seconds {
		for len(t.secs) <= i {
			t.secs = append(t.secs, &second{hist: newSecHist(), zones: map[string]int64{}})
		}
		if sec == nil {
			continue
		}
		t.secs[i].requests += sec.requests
		t.secs[i].failed += sec.failed
		t.secs[i].redirects += sec.redirects
		t.secs[i].hist.Merge(sec.hist)
		for k, n := range sec.zones {
			t.secs[i].zones[k] += n
		}
	}
}

// methodResult is the tally's per-method form: success is a 2xx.
func (t *tally) methodResult() *MethodResult {
	m := &MethodResult{
		Requests: t.requests, Succeeded: t.requests - t.failed - t.redirects,
		Latency: summarize(t.hist), Status: t.status, Errors: t.errors,
		Timeline: make([]MethodSecond, len(t.secs)),
	}
	m.Failed = m.Requests - m.Succeeded
	for i, sec := range t.secs {
		m.Timeline[i] = MethodSecond{
			Second: i, Requests: sec.requests, Succeeded: sec.requests - sec.failed - sec.redirects,
			P50: sec.hist.ValueAtQuantile(50), P99: sec.hist.ValueAtQuantile(99), Max: sec.hist.Max(), hist: sec.hist,
		}
	}
	return m
}

// mergeShards folds the shards into one Result; methods names the methods
// of a mix, whose parts the shards keep apart (nil without a mix: the
// run's one method is the whole run).
func mergeShards(r *Result, shards []*shard, methods []string) {
	all := newTally()
	per := make([]*tally, len(methods))
	for i := range per {
		per[i] = newTally()
	}
	for _, s := range shards {
		s.mu.Lock()
		all.add(s)
		for i, ms := range s.methods {
			per[i].add(ms)
		}
		s.mu.Unlock()
	}
	r.hist = all.hist
	r.Requests, r.Failed = all.requests, all.failed
	r.Status, r.Errors, r.Backends, r.Zones = all.status, all.errors, all.backends, all.zones
	r.Succeeded = r.Requests - r.Failed
	r.Latency = summarize(r.hist)
	if r.Elapsed > 0 {
		r.Throughput = float64(r.Requests) / r.Elapsed.Seconds()
	}
	r.Timeline = make([]Second, len(all.secs))
	for i, sec := range all.secs {
		r.Timeline[i] = Second{
			Second: i, Requests: sec.requests, Failed: sec.failed,
			P50: sec.hist.ValueAtQuantile(50), P99: sec.hist.ValueAtQuantile(99),
			Zones: sec.zones, hist: sec.hist,
		}
	}
	r.Methods = map[string]*MethodResult{}
	if methods == nil {
		r.Methods[r.Method] = all.methodResult()
	}
	for i, m := range methods {
		r.Methods[m] = per[i].methodResult()
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

// MethodWindow summarizes the requests of method sent in the seconds
// [from, to) of the timeline: how many, how many got a 2xx, and their
// latency. A method the run did not send gives zeros.
func (r *Result) MethodWindow(method string, from, to int) (sent, succeeded int64, lat Latency) {
	m := r.Methods[method]
	if m == nil {
		return 0, 0, Latency{}
	}
	h := newSecHist()
	for _, s := range m.Timeline {
		if s.Second < from || s.Second >= to {
			continue
		}
		sent += s.Requests
		succeeded += s.Succeeded
		if s.hist != nil {
			h.Merge(s.hist)
		}
	}
	return sent, succeeded, summarize(h)
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
