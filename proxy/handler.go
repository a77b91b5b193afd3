package proxy

import (
	"errors"
	"net/http"
	"strconv"
	"time"
)

// listenerHandler serves one listener's requests from the current
// generation.
type listenerHandler struct {
	s    *Server
	name string
}

func (h *listenerHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g := h.s.current.Load()
	if g == nil {
		plain(w, http.StatusServiceUnavailable, "no configuration loaded\n", true)
		return
	}
	g.inflight.Add(1)
	defer g.inflight.Add(-1)
	closeConn := r.ProtoMajor == 1 && r.TransferEncoding != nil
	if closeConn {
		// A chunked HTTP/1.1 request may also have carried a Content-Length,
		// which net/http drops before the handler can see it (RFC 9112
		// section 6.3 lets it win over Content-Length). Such a request is a
		// classic smuggling probe: whatever a front proxy made of the
		// framing, closing the connection after the answer means no byte
		// after this body is ever read as another request. The backend gets
		// the body re-framed by the transport, never with both fields.
		w.Header().Set("Connection", "close")
	}
	if !oneContentLength(r.Header) {
		plain(w, http.StatusBadRequest, "bad content-length\n", false)
		return
	}
	if r.Method == http.MethodConnect {
		// A reverse proxy opens no tunnels. Forwarded, a backend's 2xx
		// would turn its connection into one (RFC 9110 section 9.3.6)
		// while the transport pools it for other clients' requests; and a
		// client may already be sending tunnel bytes, so the connection
		// closes after the answer.
		w.Header().Set("Connection", "close")
		plain(w, http.StatusNotImplemented, "CONNECT is not supported\n", false)
		return
	}
	l := g.listeners[h.name]
	if l == nil {
		plain(w, http.StatusServiceUnavailable, "listener closing\n", true)
		return
	}
	rt := l.router.match(r.Host, r.URL.Path)
	if rt == nil {
		plain(w, http.StatusNotFound, "no route\n", false)
		return
	}
	p := rt.pool
	x := exchanges.Get().(*exchange)
	*x = exchange{listener: l, pool: p, route: rt.rules, start: time.Now(), ctx: r.Context()}
	x.rec.ResponseWriter = w
	x.rec.closeConn = closeConn
	defer func() {
		if v := recover(); v != nil {
			// The response broke after it began (a backend reset mid-body):
			// net/http aborts the client connection so the client sees a
			// failure, never a short body passed off as whole.
			h.s.finish(x, r, true)
			panic(v)
		}
		h.s.finish(x, r, false)
	}()

	x.id = r.Header.Get("X-Request-Id")
	if x.id == "" || len(x.id) > maxRequestIDLen {
		x.id = newRequestID()
	}
	if rr := x.route; rr != nil && rr.limit != nil {
		if ok, wait := rr.limit.allow(rr.limit.keyOf(r, l), x.start.Sub(processStart)); !ok {
			if rr.limited != nil {
				rr.limited.Inc()
			}
			x.rec.Header().Set("Retry-After", retryAfter(wait))
			plain(&x.rec, http.StatusTooManyRequests, "rate limit exceeded\n", false)
			return
		}
	}
	if p.backup != nil && r.Header.Get(RegionHopHeader) == "" {
		x.mayCross = true
		if p.Balancer.Healthy() == 0 {
			// No backend to try: the backup pool takes the request
			// before any attempt, and before panic mode would send it
			// to backends known to be down.
			x.crossTo(backupNoHealthy)
			p = x.pool
		}
	}
	if l.MaxBody > 0 {
		if r.ContentLength > l.MaxBody {
			plain(&x.rec, http.StatusRequestEntityTooLarge, "request body too large\n", false)
			return
		}
		r.Body = http.MaxBytesReader(&x.rec, r.Body, l.MaxBody)
	}
	// Only a body that could be replayed is read before the first attempt;
	// any other streams to the backend as it arrives (a gRPC stream, a
	// long upload).
	replay := p.Retry.Attempts > 1 && (Idempotent(r.Method) ||
		p.Retry.IdempotencyHeader != "" && r.Header.Get(p.Retry.IdempotencyHeader) != "")
	if err := x.body.load(r, p.Retry.MaxBody, replay); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			plain(&x.rec, http.StatusRequestEntityTooLarge, "request body too large\n", false)
		} else {
			x.final = CauseClientGone
			plain(&x.rec, http.StatusBadRequest, "request body incomplete\n", false)
		}
		return
	}
	p.budget.deposit(x.start.Sub(processStart), &p.Retry)
	h.s.forward(x, r)
}

// oneContentLength reports whether the request's Content-Length fields, if
// any, carry one decimal length (a repeated equal value is allowed, RFC
// 9110 section 8.6). net/http's HTTP/1.1 reader and quic-go's HTTP/3 reader
// refuse anything else, but net/http's HTTP/2 server takes the first of
// several fields and reads one it cannot parse as 0: the request would be
// forwarded with a length the client did not send (RFC 9113 section 8.1.1
// forbids forwarding such a malformed request).
func oneContentLength(h http.Header) bool {
	vs := h["Content-Length"]
	if len(vs) == 0 {
		return true
	}
	for _, v := range vs[1:] {
		if v != vs[0] {
			return false
		}
	}
	_, err := strconv.ParseUint(vs[0], 10, 63)
	return err == nil
}

// finish records the request's metrics and access-log line and returns the
// exchange to its pool.
func (s *Server) finish(x *exchange, r *http.Request, aborted bool) {
	status := x.rec.status
	if status == 0 {
		status = http.StatusOK
	}
	if m := x.pool.metrics; m != nil {
		m.requests.get(requestKey{listener: x.listener.Name, code: status}).Inc()
		m.duration.Observe(time.Since(x.start).Seconds())
	}
	if s.access != nil {
		s.access.log(x, r, status, aborted)
	}
	x.reset()
	exchanges.Put(x)
}

// plain writes a short plain-text answer. It never carries internal detail.
func plain(w http.ResponseWriter, code int, msg string, retryAfter bool) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	if retryAfter {
		h.Set("Retry-After", "1")
	}
	w.WriteHeader(code)
	_, _ = w.Write([]byte(msg))
}
