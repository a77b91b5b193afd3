package proxy

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptrace"
	"time"

	"github.com/azimuthproxy/azimuth/balancer"
	"github.com/azimuthproxy/azimuth/internal/fastpath"
	"github.com/azimuthproxy/azimuth/internal/h1client"
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

// attempt is one try of a request on one backend: its lifetime (which the
// transport aborts through), the lease that counts it on the backend, the
// watch that tells it the backend went out, and its outcome. It is
// allocated per attempt, like the lifetime it embeds, so a timer or a
// watch that fires after the request ended finds an ended lifetime and
// nothing else.
type attempt struct {
	lifetime
	r     *race
	lease balancer.Lease
	watch balancer.Watch
	start time.Time
	req   *http.Request
	slot  int  // its place in the access log's list of attempts
	own   bool // runs on the request's goroutine: it may forward 1xx responses
	hedge bool // started while another attempt of the request ran
	// hedgeAt, when not 0, is the hedge delay its timer first fires at
	// (before its per-try time; see race.begin).
	hedgeAt time.Duration
	from    Cause // why it started: CauseNone for the first, else the cause of the retry

	resp   *http.Response
	cause  Cause
	err    error
	status int
	took   time.Duration // to the response head, or to the failure
}

var _ balancer.Watcher = (*attempt)(nil)

// perTryFired runs when the attempt's timer fires. For an attempt that may
// hedge, a timer before the request's deadline is its hedge delay or its
// per-try time: a hedge starts (once) and the attempt keeps running, its
// timer set again for the deadline. A hedge delay whose hedge was not
// started (hedge.max reached, the budget) sets it for the per-try time.
// Otherwise the attempt ends as timed out.
func (a *attempt) perTryFired() {
	l := &a.lifetime
	l.mu.Lock()
	if l.cause != nil || l.headed {
		l.mu.Unlock()
		return
	}
	if left := time.Until(a.r.deadline); left > 0 {
		next := left
		switch {
		case l.pastPerTry:
			// It moved already: its backend went out.
		case a.hedgeAt > 0 && !l.pastDelay:
			l.pastDelay = true
			if a.r.hedge(a, CauseTimeout, true) {
				l.pastPerTry = true
			} else if pt := a.r.perTry; pt > 0 {
				next = min(max(pt-time.Since(a.start), time.Nanosecond), left)
			}
		default:
			l.pastPerTry = true
			a.r.hedge(a, CauseTimeout, false)
		}
		l.timer.Reset(next)
		l.mu.Unlock()
		return
	}
	// Ended under the lock, so a head that arrives now sees it ended.
	abort := l.endLocked(errPerTryTimeout)
	l.mu.Unlock()
	if abort != nil {
		abort()
	}
}

// BackendOut moves the attempt's request at once when health or an
// operator took its backend out while it waited for its response: a hedge
// starts in another zone, unless the attempt already hedged.
func (a *attempt) BackendOut() {
	l := &a.lifetime
	l.mu.Lock()
	if l.cause == nil && !l.headed && !l.pastPerTry {
		l.pastPerTry = true
		a.r.hedge(a, CauseOut, false)
	}
	l.mu.Unlock()
}

// movedAway reports whether the attempt's per-try timer or watch already
// started a hedge (or tried to) for it.
func (a *attempt) movedAway() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.pastPerTry
}

// backendOut reports whether the attempt's backend was taken out since
// the pick (and the pool is not in panic, when picks ignore health).
func (a *attempt) backendOut() bool {
	return !a.lease.Backend().Available() && !a.r.x.pool.Balancer.Panicking()
}

// attempts runs the request's attempts (see race) and returns the
// response to pass on, or the failure. Nothing has been written to the
// client when it returns, and every attempt but the winner has ended.
func (s *Server) attempts(x *exchange, out *http.Request) (*http.Response, error) {
	r := &x.race
	r.init(s, x, out)
	p := x.pool
	keyed := r.keyFor(p, out)
	var lease balancer.Lease
	trial := false
	if r.hedging && r.key.Pin == 0 {
		// A backend waiting for its trial after an ejection gets a
		// request that can hedge away from it if it still hangs (not
		// one pinned elsewhere).
		lease, trial = p.Balancer.PickTrial(&r.tried)
	}
	if !trial {
		var err error
		if lease, err = p.Balancer.PickKeyed(x.ctx, &r.tried, r.keyArg()); err != nil {
			if x.ctx.Err() != nil {
				return nil, &failure{cause: CauseClientGone, err: x.ctx.Err()}
			}
			return nil, &failure{cause: CauseOther, err: err, noBackend: true}
		}
	}
	r.started, r.running = 1, 1
	r.loop(lease, CauseNone, "", false, true)
	won, last := r.wait()
	if won == nil {
		return nil, &failure{cause: last.cause, err: last.err}
	}
	if won.cause == CauseNone {
		p.observeLatency(won.lease.Backend().Zone(), won.start.Sub(processStart)+won.took, won.took)
	}
	if keyed {
		r.stick(won)
	}
	won.resp.Body = x.releaseOnClose(won.resp.Body, won.lease, &won.lifetime)
	return won.resp, nil
}

// send makes one attempt's round trip and classifies its outcome. It
// takes no lock of the race.
func (a *attempt) send() {
	x := a.r.x
	p := x.pool
	if a.backendOut() && !a.lease.Trial() {
		// Taken out since the pick: send it nothing (under load, the
		// requests picked just before an ejection would otherwise reach
		// the backend after it).
		if a.r.replayable {
			a.lease.Unwatch(&a.watch)
		}
		a.headArrived()
		a.cause, a.err = CauseUnsent, errUnsent
		return
	}
	if a.own {
		x.rec.info.attempt(a.end)
	}
	resp, err := a.roundTrip(p.Transport)
	if a.r.replayable {
		a.lease.Unwatch(&a.watch)
	}
	a.took = time.Since(a.start)
	// Whatever came back, the attempt's timer and watch may start nothing
	// more from now on.
	if ended := a.headArrived(); err == nil && ended {
		// The timer ended the attempt, or another attempt won, as the
		// head arrived; its body is cut.
		drain(resp.Body)
		resp, err = nil, h1client.ErrAttemptEnded
	}
	if err == nil && (resp.StatusCode < 100 || resp.StatusCode > 999) {
		// A status no client can be sent (HTTP/1.1's parser takes 000).
		drain(resp.Body)
		resp, err = nil, errMalformedStatus
	}
	a.cause = classify(err, a.Cause(), x.ctx)
	if err == nil {
		a.status = resp.StatusCode
		if p.Retry.RetryStatus(a.status) {
			a.cause = CauseStatus
			err = errors.New("status " + resp.Status)
		}
	}
	a.resp, a.err = resp, err
}

// roundTrip sends the attempt's request with the client's exchange as the
// receiver of 1xx responses, when the attempt runs on the request's own
// goroutine (a hedge's 1xx responses are dropped: only one goroutine may
// write to the client). A transport that sends within an attempt (the
// proxy's HTTP/1.1 one) takes the attempt's lifetime and the receiver
// directly. Others get a context that the lifetime's end cancels, and the
// receiver through httptrace.
func (a *attempt) roundTrip(t http.RoundTripper) (*http.Response, error) {
	x := a.r.x
	s, ok := t.(fastpath.AttemptSender)
	took(pathSend, ok)
	if ok {
		if a.own {
			return s.Send(a.req, &a.lifetime, x.informational)
		}
		return s.Send(a.req, &a.lifetime, nil)
	}
	ctx, cancel := context.WithCancelCause(a.req.Context())
	a.OnEnd(func() { cancel(a.Cause()) })
	req := a.req
	if a.own {
		hook := &informationalHook{x: x}
		defer hook.end()
		trace := &httptrace.ClientTrace{Got1xxResponse: hook.got}
		ctx = httptrace.WithClientTrace(ctx, trace)
	}
	return t.RoundTrip(req.WithContext(ctx))
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
	w, ok := r.ReadCloser.(fastpath.Waiter)
	took(pathWaiting, ok)
	return ok && w.Waiting()
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
