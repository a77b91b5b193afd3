package loadtest

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// Protocol names the HTTP version the generator speaks.
type Protocol string

// The protocols the generator speaks. H2 negotiates HTTP/2 through TLS ALPN
// on https URLs and uses prior knowledge (h2c) on http URLs.
const (
	H1 Protocol = "h1"
	H2 Protocol = "h2"
	H3 Protocol = "h3"
)

// DefaultDuration bounds a run that names neither a duration nor a count,
// so no invocation can run forever.
const DefaultDuration = 10 * time.Second

// Options describes one load run. The zero value of every field except URL
// has a usable default (see withDefaults).
type Options struct {
	// URL is the target, http:// or https://.
	URL string
	// Method is the HTTP method; GET by default.
	Method string
	// Header is sent with every request.
	Header http.Header
	// Body is sent with every request; nil sends none.
	Body []byte
	// Mix, when set, replaces Method and Body: each request takes its
	// method and body from one entry, in proportion to the weights and in
	// a fixed order (see newMixPlan). A mix gives every request an ID
	// (IDHeader, DefaultIDHeader when empty) and keeps results per method.
	// Without a mix the generator's path is the single-method one, with
	// no per-request choice at all.
	Mix []MixEntry
	// Protocol selects h1, h2 or h3; h1 by default.
	Protocol Protocol
	// IDHeader, when set, names a header that carries a unique value on
	// every request (the run's token and a sequence number), so a backend
	// that counts them can prove each request was delivered once; e.g.
	// X-Request-Id or Idempotency-Key.
	IDHeader string
	// Insecure skips TLS certificate verification, for self-signed targets.
	Insecure bool
	// Rate, when positive, runs open loop at this many requests per second.
	Rate float64
	// Concurrency is the number of workers: in closed loop, the number of
	// requests in flight; in open loop, the most requests in flight before
	// new ones queue (their queueing time counts in their latency). Zero
	// picks 64 for closed loop and enough to cover Rate*Timeout in open loop.
	Concurrency int
	// Connections, for h2 and h3, spreads the workers over this many
	// connections, each its own client, so that a run can load a server
	// with one stream per connection (Connections = Concurrency) or ten
	// (Concurrency = 10 × Connections), as browsers and gRPC clients do.
	// Zero leaves one client, which opens one connection to the target
	// and multiplexes every worker's requests on it. h1 always has one
	// connection per worker.
	Connections int
	// Duration bounds the run in time.
	Duration time.Duration
	// Requests bounds the run in count; zero means "until Duration".
	Requests int64
	// Timeout bounds each request, from its actual send until the last body
	// byte; 5s by default.
	Timeout time.Duration
	// Started, when set, is called once with the run's start time, the
	// zero of the schedule and the timeline, before the first request; a
	// caller that times events against the timeline (faults) starts its
	// clock here. It must not block.
	Started func(start time.Time)
	// Progress, when set, is called about once a second from the run's
	// reporting goroutine with the figures so far.
	Progress func(Progress)
}

// Progress is the running state handed to Options.Progress.
type Progress struct {
	Elapsed  time.Duration
	Requests int64
	Failed   int64
	// Rate is the completed requests per second over the last interval.
	Rate float64
	// P99 is the 99th percentile latency of the run so far.
	P99 time.Duration
}

// withDefaults returns a copy of o with every default applied, or an error
// naming the first invalid field.
func (o Options) withDefaults() (Options, error) {
	if o.URL == "" {
		return o, errors.New("target url is required")
	}
	u, err := url.Parse(o.URL)
	if err != nil {
		return o, fmt.Errorf("parsing target url: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return o, fmt.Errorf("target url %q: scheme must be http or https", o.URL)
	}
	if u.Host == "" {
		return o, fmt.Errorf("target url %q: host is missing", o.URL)
	}
	if o.Method == "" {
		o.Method = http.MethodGet
	}
	if len(o.Mix) > 0 {
		if o.Mix, err = checkMix(o.Mix); err != nil {
			return o, err
		}
		o.Method, o.Body = mixLabel(o.Mix), nil
		if o.IDHeader == "" {
			o.IDHeader = DefaultIDHeader
		}
	}
	if o.Protocol == "" {
		o.Protocol = H1
	}
	switch o.Protocol {
	case H1, H2:
	case H3:
		if u.Scheme != "https" {
			return o, fmt.Errorf("protocol h3 needs an https url, got %q", o.URL)
		}
	default:
		return o, fmt.Errorf("protocol %q: want h1, h2 or h3", o.Protocol)
	}
	if o.Rate < 0 {
		return o, fmt.Errorf("rate %v: must not be negative", o.Rate)
	}
	if o.Concurrency < 0 {
		return o, fmt.Errorf("concurrency %d: must not be negative", o.Concurrency)
	}
	if o.Connections < 0 {
		return o, fmt.Errorf("connections %d: must not be negative", o.Connections)
	}
	if o.Connections > 0 && o.Protocol == H1 {
		return o, errors.New("connections: only for h2 and h3 (h1 has a connection per worker)")
	}
	if o.Requests < 0 {
		return o, fmt.Errorf("request count %d: must not be negative", o.Requests)
	}
	if o.Duration < 0 {
		return o, fmt.Errorf("duration %v: must not be negative", o.Duration)
	}
	if o.Duration == 0 && o.Requests == 0 {
		o.Duration = DefaultDuration
	}
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Second
	}
	if o.Timeout < 0 {
		return o, fmt.Errorf("timeout %v: must not be negative", o.Timeout)
	}
	if o.Concurrency == 0 {
		o.Concurrency = 64
		if o.Rate > 0 {
			need := int(o.Rate*o.Timeout.Seconds()) + 1
			o.Concurrency = min(max(need, 16), 1000)
		}
	}
	if o.Connections > o.Concurrency {
		return o, fmt.Errorf("connections %d: more than the %d workers", o.Connections, o.Concurrency)
	}
	return o, nil
}

// openLoop reports whether the run paces requests at a fixed rate.
func (o Options) openLoop() bool { return o.Rate > 0 }
