package proxy

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/azimuthproxy/azimuth/balancer"
)

// maxLoggedAttempts bounds the attempts an access-log line lists.
const maxLoggedAttempts = 8

// exchange is one request's state on its way through the proxy: routing
// result, buffered body, attempts and the response as written. Exchanges
// are pooled; one is owned by a single request from ServeHTTP to its end.
type exchange struct {
	listener *listener
	pool     *Pool
	route    *routeRules // the matched route's rules; nil for none
	// mayCross: the pool has a backup pool and the request did not come
	// from another region. backupFor is the pool the request left for its
	// backup, and backupReason why; nil while it has not crossed.
	mayCross     bool
	backupFor    *Pool
	backupReason string
	ctx          context.Context // the client's request
	id           string
	start        time.Time
	body         body
	rec          recorder
	attempts     [maxLoggedAttempts]attemptRecord
	tries        int
	final        Cause // cause of the last failed attempt, if the request failed
	respBody     releasingBody
	race         race
}

// attemptRecord is what the access log says of one attempt.
type attemptRecord struct {
	backend  string
	zone     string
	cause    Cause
	status   int
	duration time.Duration
	hedge    bool // started beside a running attempt
}

var exchanges = sync.Pool{New: func() any { return new(exchange) }}

// slot counts an attempt that starts and returns its place in the access
// log's list, in the order attempts started.
func (x *exchange) slot() int {
	i := x.tries
	x.tries++
	return i
}

// record fills the access log's entry of the attempt in slot i.
func (x *exchange) record(i int, b *balancer.Backend, cause Cause, status int, d time.Duration, hedge bool) {
	if i < maxLoggedAttempts {
		x.attempts[i] = attemptRecord{backend: b.Address(), zone: b.Zone(), cause: cause, status: status, duration: d, hedge: hedge}
	}
}

func (x *exchange) reset() {
	x.body.release()
	*x = exchange{}
}

// recorder wraps the client's ResponseWriter to learn the status and size
// of the response. Unwrap lets http.ResponseController reach flushing and
// hijacking of the connection beneath.
//
// It also bounds the 1xx responses a backend can push through
// (informational), and keeps Connection: close on the final answer when
// the handler asked for it: the header map is cleared after each 1xx
// forwarded (see exchange.informational).
type recorder struct {
	http.ResponseWriter
	status    int
	bytes     int64
	closeConn bool
	info      informational
}

func (r *recorder) WriteHeader(code int) {
	if forwardInformational(code) && !r.info.allow() {
		return
	}
	if r.status == 0 || r.status < 200 {
		r.status = code
	}
	if r.closeConn && code >= 200 {
		r.ResponseWriter.Header().Set("Connection", "close")
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.WriteHeader(http.StatusOK)
	}
	n, err := r.ResponseWriter.Write(p)
	r.bytes += int64(n)
	return n, err
}

func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
