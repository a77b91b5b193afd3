package discovery

import "time"

// backoff returns how long to wait after the n-th error in a row (n from 1):
// base doubled n-1 times, capped at max, then jittered into [d/2, d) with r
// in [0, 1). Keeping half the delay fixed bounds how hard many proxies
// retry an agent that has just come back; the random half spreads them out.
func backoff(n int, base, max time.Duration, r float64) time.Duration {
	if n < 1 {
		n = 1
	}
	d := base
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	if r < 0 {
		r = 0
	}
	if r >= 1 {
		r = 0.999999
	}
	half := d / 2
	return half + time.Duration(r*float64(d-half))
}
