package proxy

import (
	"net/http"
	"time"

	"github.com/azimuthproxy/azimuth/balancer"
)

// Timeouts bound a pool's attempts.
type Timeouts struct {
	// Connect bounds dialing a backend (TCP and TLS handshake).
	Connect time.Duration
	// PerTry is how long an attempt of a replayable request waits for its
	// response head before a hedge starts beside it (see race); 0 leaves
	// only Request. PerTryAuto learns it instead (see perTryLearner). A
	// request that cannot be replayed has no per-try time.
	PerTry     time.Duration
	PerTryAuto bool
	// Request bounds all attempts of a request together, until response
	// headers. A response body then streams for as long as it flows.
	Request time.Duration
}

// Observer learns whether each attempt on a backend failed, for passive
// outlier detection. Client cancellations are never reported.
type Observer interface {
	Observe(b *balancer.Backend, failed bool)
}

// PoolConfig is one pool's settings for a generation.
type PoolConfig struct {
	Name     string
	Balancer *balancer.Pool
	// Transport sends one attempt; NewTransport builds the usual one.
	Transport http.RoundTripper
	// Scheme is "http" or "https", for the backend URL.
	Scheme   string
	Timeouts Timeouts
	Retry    RetryPolicy
	// Hedge starts hedges by delay; the zero value is off.
	Hedge Hedge
	// Outlier, if not nil, is told the outcome of every attempt.
	Outlier Observer
	// FailStatuses are the response codes that count as a failed attempt
	// for Outlier, whatever Retry says (health.passive.statuses).
	FailStatuses []int
	// Backup, if set, names the pool (typically another region's
	// proxies) that takes this pool's requests when it has no healthy
	// backend, or when its attempts end with no answer and the request
	// may be replayed (see crossRegions).
	Backup string
}

// Pool is a pool as the request path sees it in one generation.
type Pool struct {
	PoolConfig
	backup  *Pool // Backup, resolved by Build
	budget  *Budget
	perTry  *perTryLearner
	metrics *poolMetrics
}

// PerTry returns the pool's per-try timeout now and whether it is learned
// (0: none).
func (p *Pool) PerTry() (d time.Duration, auto bool) {
	return p.perTryNow(), p.Timeouts.PerTryAuto
}

// perTryNow is the per-try timeout a new request gets: the learned one,
// at most half of the request's time so a hedge always has room, or the
// fixed one.
func (p *Pool) perTryNow() time.Duration {
	if !p.Timeouts.PerTryAuto {
		return p.Timeouts.PerTry
	}
	d := p.perTry.current()
	if r := p.Timeouts.Request; r > 0 {
		d = min(d, r/2)
	}
	return d
}

// failStatus reports whether a response code counts as a failed attempt.
func (p *Pool) failStatus(code int) bool {
	for _, c := range p.FailStatuses {
		if c == code {
			return true
		}
	}
	return false
}
