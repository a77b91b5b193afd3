package proxy

import (
	"context"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/azimuthproxy/azimuth/balancer"
)

// failure is the error RoundTrip returns when no attempt produced a
// response; answerError turns it into the client's status.
type failure struct {
	cause Cause
	err   error
	// noBackend: the pool had no backend, or no capacity, for the first try.
	noBackend bool
}

func (f *failure) Error() string { return f.cause.String() + ": " + f.err.Error() }
func (f *failure) Unwrap() error { return f.err }

// roundTripper runs the attempt loop. ReverseProxy calls it once per request
// and writes nothing to the client before it returns, so every retry happens
// before the first response byte.
type roundTripper struct{ s *Server }

func (rt roundTripper) RoundTrip(out *http.Request) (*http.Response, error) {
	clientCtx := out.Context()
	x := exchangeOf(clientCtx)
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
		resp, cause, err := rt.try(x, out, lease, deadline)
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
func (rt roundTripper) try(x *exchange, out *http.Request, lease balancer.Lease, deadline time.Time) (*http.Response, Cause, error) {
	b := lease.Backend()
	p := x.pool
	clientCtx := out.Context()
	limit := time.Until(deadline)
	if pt := p.Timeouts.PerTry; pt > 0 && pt < limit {
		limit = pt
	}
	ctx, cancel := context.WithCancelCause(clientCtx)
	timer := time.AfterFunc(limit, func() { cancel(errPerTryTimeout) })
	var req *http.Request
	if x.tries > 0 {
		// A retry: a fresh request with its own URL and body reader, since
		// the failed attempt's transport may still hold the old ones.
		req = out.Clone(ctx)
		req.Body = x.body.reader()
	} else {
		req = out.WithContext(ctx) // shares out.URL, a copy ReverseProxy made
	}
	req.URL.Host = b.Address()
	x.rec.info.attempt(cancel)

	start := time.Now()
	resp, err := p.Transport.RoundTrip(req)
	fired := !timer.Stop()
	if err == nil && fired {
		// The timer went off as the headers arrived; the body is cut.
		drain(resp.Body)
		resp, err = nil, errPerTryTimeout
	}
	cause := classify(err, ctx, clientCtx)
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
		cancel(err)
		lease.Release()
		return nil, cause, err
	}
	resp.Body = x.releaseOnClose(resp.Body, lease, cancel)
	if cause == CauseStatus {
		return resp, cause, errors.New("status " + resp.Status)
	}
	return resp, CauseNone, nil
}

// drain discards a little of a response body, so its connection can be
// reused when cheap, and closes it.
func drain(rc io.ReadCloser) {
	_, _ = io.CopyN(io.Discard, rc, 4<<10)
	_ = rc.Close()
}

// releaseOnClose returns a body that ends the attempt when closed: the
// backend's in-flight count drops and the attempt's context ends. Only the
// attempt whose response goes to the client gets one, so it lives in the
// pooled exchange. An upgraded connection's body (101) stays writable.
func (x *exchange) releaseOnClose(rc io.ReadCloser, lease balancer.Lease, cancel context.CancelCauseFunc) io.ReadCloser {
	x.respBody = releasingBody{ReadCloser: rc, lease: lease, cancel: cancel, rec: &x.rec}
	if rw, ok := rc.(io.ReadWriteCloser); ok {
		return &releasingRWBody{releasingBody: x.respBody, w: rw}
	}
	return &x.respBody
}

type releasingBody struct {
	io.ReadCloser
	lease  balancer.Lease
	cancel context.CancelCauseFunc
	done   bool
	// rec and flushed let Read flush what the client was sent before it
	// waits for more (see Read).
	rec     *recorder
	flushed int64
}

// Read flushes the bytes written to the client since the last read before
// it reads more from the backend: a slow backend's pieces reach the client
// as they come, with or without a Content-Length (ReverseProxy flushes by
// itself only bodies of unknown length). A response with no body written
// yet is never flushed here, so its headers still go out with the end of
// the stream (a gRPC trailers-only answer stays one HEADERS frame).
func (r *releasingBody) Read(p []byte) (int, error) {
	if r.rec != nil && r.rec.bytes > r.flushed {
		r.flushed = r.rec.bytes
		r.rec.Flush()
	}
	return r.ReadCloser.Read(p)
}

func (r *releasingBody) Close() error {
	err := r.ReadCloser.Close()
	if !r.done {
		r.done = true
		r.lease.Release()
		r.cancel(nil)
	}
	return err
}

type releasingRWBody struct {
	releasingBody
	w io.Writer
}

func (r *releasingRWBody) Write(p []byte) (int, error) { return r.w.Write(p) }
