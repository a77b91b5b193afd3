package configs

import (
	"fmt"
	"slices"
	"time"
)

// Hedge sends a second attempt of a slow replayable request to another
// zone before the first has answered: the first response headers win and
// the others are cancelled. It cuts the tail a slow (not dead) zone or
// backend adds, at the price of extra load: every hedge is one more
// request to a backend, drawn from the retry budget. Off unless the pool
// has a hedge block. The per-try timeout (timeouts.per_try) still hedges
// an attempt that runs past it, hedge block or not; hedge.delay only
// starts hedges earlier.
type Hedge struct {
	// Delay is how long an attempt waits for its response headers before
	// a hedge starts: "auto" (the default) follows the p95 time to
	// headers of successful attempts in the pool's fastest zone over the
	// last 10 s (at least 5ms; no hedge by delay until a zone has 20
	// samples), or a fixed duration.
	Delay HedgeDelay `yaml:"delay"`
	// Max is how many hedges by delay one request may start (default 1),
	// each in a zone the request has not tried; retry.attempts still
	// bounds all tries together.
	Max int `yaml:"max"`
}

// HedgeDelay is hedge.delay: "auto" or a duration above 0.
type HedgeDelay struct {
	// Auto follows the pool's latency; Fixed is the delay otherwise.
	Auto  bool
	Fixed time.Duration
}

// String returns the value as written in the file.
func (h HedgeDelay) String() string {
	if h.Auto || h.Fixed == 0 {
		return PerTryAuto
	}
	return h.Fixed.String()
}

// MarshalText writes the value in the form UnmarshalText reads.
func (h HedgeDelay) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText reads "auto" or a duration above 0.
func (h *HedgeDelay) UnmarshalText(b []byte) error {
	if string(b) == PerTryAuto {
		*h = HedgeDelay{Auto: true}
		return nil
	}
	d, err := ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("want auto or a duration such as 50ms: %w", err)
	}
	if d <= 0 {
		return fmt.Errorf("%s: want auto or a duration above 0 (leave the hedge block out to hedge by per_try only)", b)
	}
	*h = HedgeDelay{Fixed: d}
	return nil
}

// hedge validates a pool's hedge block.
func (v *validator) hedge(p string, pl Pool) {
	h := pl.Hedge
	if h == nil {
		return
	}
	if h.Max < 1 {
		v.add(p+".max", "%d: want at least 1", h.Max)
	} else if h.Max > pl.Retry.Attempts-1 {
		v.add(p+".max", "%d hedges need retry.attempts of at least %d (it is %d)", h.Max, h.Max+1, pl.Retry.Attempts)
	}
	if !slices.Contains(pl.Retry.On, RetryOnTimeout) {
		v.add(p, "hedging needs %q in retry.on: a hedge is a retry of an attempt that is late", RetryOnTimeout)
	}
	if !h.Delay.Auto && pl.Timeouts.Request > 0 && h.Delay.Fixed >= pl.Timeouts.Request {
		v.add(p+".delay", "%v is not below timeouts.request %v: no hedge would ever start", h.Delay.Fixed, pl.Timeouts.Request)
	}
}
