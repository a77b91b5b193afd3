package proxy

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptrace"
	"time"

	"github.com/azimuthproxy/azimuth/balancer"
)

// failure is the error the attempt loop returns when no attempt produced a
// response; answerError turns it into the client's status.
type failure struct {
	cause Cause
	err   error
	// noBackend: the pool had no backend, or no capacity, for the first try.
	noBackend bool
}

func (f *failure) Error() string { return f.cause.String() + ": " + f.err.Error() }
func (f *failure) Unwrap() error { return f.err }

// attempts runs the attempt loop for out: pick a backend, send, and when
// the attempt failed and replay is safe, try another. It returns the
// response to pass on, or the failure. Nothing has been written to the
// client when it returns.
func (s *Server) attempts(x *exchange, out *http.Request) (*http.Response, error) {
	clientCtx := x.ctx
	p := x.pool
	deadline := x.start.Add(p.Timeouts.Request)
	if p.Timeouts.Request <= 0 {
		deadline = x.start.Add(24 * time.Hour)
	}
	hasKey := p.Retry.IdempotencyHeader != "" && out.Header.Get(p.Retry.IdempotencyHeader) != ""
	var tried balancer.Tried
	var last *failure
	var lastZone string
	retrying := false
	defer func() {
		if retrying {
			p.budget.release()
		}
	}()
	for {
		lease, err := p.Balancer.Pick(clientCtx, &tried)
		if err != nil {
			if last != nil {
				return nil, last
			}
			if clientCtx.Err() != nil {
				return nil, &failure{cause: CauseClientGone, err: clientCtx.Err()}
			}
			return nil, &failure{cause: CauseOther, err: err, noBackend: true}
		}
		b := lease.Backend()
		tried.Add(b)
		if last != nil && p.metrics != nil {
			p.metrics.retries.get(retryKey{from: lastZone, to: b.Zone(), cause: last.cause}).Inc()
		}
		resp, cause, err := x.try(out, lease, deadline)
		if cause == CauseNone {
			return resp, nil
		}
		v := Decide(&p.Retry, Attempt{
			Method:            out.Method,
			HasIdempotencyKey: hasKey,
			BodyReplayable:    x.body.replayable,
			Cause:             cause,
			Tries:             tried.Len(),
			TimeLeft:          time.Until(deadline),
			BudgetAllows:      true, // checked last, below, since taking a slot is not pure
		})
		if v == Retry && !retrying {
			if retrying = p.budget.acquire(&p.Retry); !retrying {
				v = NoRetryBudget
			}
		}
		if v != Retry {
			if v == NoRetryBudget && p.metrics != nil {
				p.metrics.budgetExhausted.Inc()
			}
			if resp != nil { // a retryable status we may not retry: pass it on
				return resp, nil
			}
			x.final = cause
			return nil, &failure{cause: cause, err: err}
		}
		if resp != nil {
			drain(resp.Body)
		}
		last, lastZone = &failure{cause: cause, err: err}, b.Zone()
		x.final = cause
	}
}

// try sends one attempt to the lease's backend. It returns the response,
// or the cause and error of the failure; for CauseStatus it returns both
// the response and the cause, so the caller can still pass the response on.
func (x *exchange) try(out *http.Request, lease balancer.Lease, deadline time.Time) (*http.Response, Cause, error) {
	b := lease.Backend()
	p := x.pool
	clientCtx := x.ctx
	limit := time.Until(deadline)
	if pt := p.Timeouts.PerTry; pt > 0 && pt < limit {
		limit = pt
	}
	life := startLifetime(clientCtx, limit)
	if limit <= 0 {
		// The request's time ran out before this try began (a slow
		// client's body took it): the try fails at once as timed out.
		life.end(errPerTryTimeout)
	}
	req := out
	if x.tries > 0 {
		// A retry: its own request, URL and body reader, since the failed
		// attempt's transport may still hold the old ones. The header map
		// is shared: nothing writes to it once the request is made.
		o := &outboundRequest{req: *out, url: *out.URL}
		req = &o.req
		req.URL = &o.url
		req.Body = x.body.reader()
	}
	req.URL.Host = b.Address()
	x.rec.info.attempt(life.end)
	start := time.Now()
	resp, err := x.roundTrip(p.Transport, req, life)
	if late := life.headArrived(); err == nil && late {
		// The timer went off as the headers arrived; the body is cut.
		drain(resp.Body)
		resp, err = nil, errPerTryTimeout
	}
	if err == nil && (resp.StatusCode < 100 || resp.StatusCode > 999) {
		// A status no client can be sent (HTTP/1.1's parser takes 000).
		drain(resp.Body)
		resp, err = nil, errMalformedStatus
	}
	cause := classify(err, life.Cause(), clientCtx)
	status := 0
	if err == nil {
		status = resp.StatusCode
		if p.Retry.RetryStatus(status) {
			cause = CauseStatus
		}
	}
	x.record(b, cause, status, time.Since(start))
	if m := p.metrics; m != nil {
		m.attempts.get(attemptKey{zone: b.Zone(), cause: cause}).Inc()
	}
	if p.Outlier != nil && cause != CauseClientGone {
		p.Outlier.Observe(b, cause.BackendFault())
	}
	if err != nil {
		life.finish()
		lease.Release()
		return nil, cause, err
	}
	resp.Body = x.releaseOnClose(resp.Body, lease, life)
	if cause == CauseStatus {
		return resp, cause, errors.New("status " + resp.Status)
	}
	return resp, CauseNone, nil
}

// roundTrip sends one attempt's request with the client's exchange as the
// receiver of 1xx responses. The proxy's HTTP/1.1 transport takes the
// attempt's lifetime and the receiver directly and calls it on this
// goroutine. Others get a context that the lifetime's end cancels, and
// the receiver through httptrace.
func (x *exchange) roundTrip(t http.RoundTripper, req *http.Request, life *lifetime) (*http.Response, error) {
	if h1, ok := t.(*h1Transport); ok {
		return h1.roundTrip(req, life, x.informational)
	}
	ctx, cancel := context.WithCancelCause(req.Context())
	life.onEnd(func() { cancel(life.Cause()) })
	hook := &informationalHook{x: x}
	defer hook.end()
	trace := &httptrace.ClientTrace{Got1xxResponse: hook.got}
	return t.RoundTrip(req.WithContext(httptrace.WithClientTrace(ctx, trace)))
}

// errMalformedStatus fails an attempt whose backend answered with a
// status outside 100-999.
var errMalformedStatus = errors.New("backend answered with a malformed status code")

// drain discards a little of a response body, so its connection can be
// reused when cheap, and closes it.
func drain(rc io.ReadCloser) {
	_, _ = io.CopyN(io.Discard, rc, 4<<10)
	_ = rc.Close()
}

// releaseOnClose returns a body that ends the attempt when closed: the
// backend's in-flight count drops and the attempt's lifetime ends. Only the
// attempt whose response goes to the client gets one, so it lives in the
// pooled exchange. An upgraded connection's body (101) stays writable.
func (x *exchange) releaseOnClose(rc io.ReadCloser, lease balancer.Lease, life *lifetime) io.ReadCloser {
	x.respBody = releasingBody{ReadCloser: rc, lease: lease, life: life, rec: &x.rec}
	if rw, ok := rc.(io.ReadWriteCloser); ok {
		return &releasingRWBody{releasingBody: x.respBody, w: rw}
	}
	return &x.respBody
}

type releasingBody struct {
	io.ReadCloser
	lease balancer.Lease
	life  *lifetime
	done  bool
	// rec and flushed let Read flush what the client was sent before it
	// waits for more (see Read).
	rec     *recorder
	flushed int64
}

// Read flushes the bytes written to the client since the last read before
// it reads more from the backend: a slow backend's pieces reach the client
// as they come, with or without a Content-Length. A response with no body written
// yet is never flushed here, so its headers still go out with the end of
// the stream (a gRPC trailers-only answer stays one HEADERS frame).
func (r *releasingBody) Read(p []byte) (int, error) {
	if r.rec != nil && r.rec.bytes > r.flushed {
		r.flushed = r.rec.bytes
		r.rec.Flush()
	}
	return r.ReadCloser.Read(p)
}

// waiting reports whether the body's next bytes have yet to come from
// the backend, as far as the transport can tell (only the HTTP/1.1 one
// can).
func (r *releasingBody) waiting() bool {
	w, ok := r.ReadCloser.(interface{ waiting() bool })
	return ok && w.waiting()
}

func (r *releasingBody) Close() error {
	err := r.ReadCloser.Close()
	if !r.done {
		r.done = true
		r.lease.Release()
		r.life.finish()
	}
	return err
}

type releasingRWBody struct {
	releasingBody
	w io.Writer
}

func (r *releasingRWBody) Write(p []byte) (int, error) { return r.w.Write(p) }
