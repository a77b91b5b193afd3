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
	// PerTry bounds one attempt from connect until response headers; 0
	// leaves only Request.
	PerTry time.Duration
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
	// Outlier, if not nil, is told the outcome of every attempt.
	Outlier Observer
}

// Pool is a pool as the request path sees it in one generation.
type Pool struct {
	PoolConfig
	budget  *Budget
	metrics *poolMetrics
}
