package proxy

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/azimuthproxy/azimuth/internal/fastpath"
)

// lifetime is one attempt's span: it ends, once, when its per-try time
// runs out before the response head, when the client leaves, when the
// forwarder ends it (too many 1xx) or when its response is done. Ending it
// runs the transport's abort, if one is set (the proxy's HTTP/1.1
// transport closes the connection in use; for other transports it cancels
// the attempt's context).
//
// It replaces a context per attempt with a cancel cause and a timer, on
// which the transport registered its abort with context.AfterFunc: two
// registrations, each with its lock, children map and channel, on every
// request. Here the client's context has one registration, and the
// transport's abort is a field.
type lifetime struct {
	client    context.Context
	watched   fastpath.Watchable // the client's context, when it takes a watcher
	stopWatch func() bool        // stops watching any other client context
	timer     *time.Timer        // the per-try limit, until the response head

	mu    sync.Mutex
	cause error  // why it ended; nil while it runs
	abort func() // run when it ends, unless cleared first
	// headed is set once the response head arrived, so a timer or a watch
	// that fires late starts no hedge for it; pastPerTry once its per-try
	// time ran out or its backend went out, or it hedged by delay (it
	// hedged, or tried to); pastDelay once its hedge delay ran out.
	headed, pastPerTry, pastDelay bool
	// shared is set for an attempt whose timer and backend watch may start
	// hedges (see attempt): headArrived then always takes the lock.
	shared bool
	// out, if set, tells whether the attempt's backend was taken out: the
	// transport then sends nothing more to it (see SendAgain). An
	// interface, not a func, so setting it allocates nothing.
	out outChecker
}

// The HTTP/1.1 transport aborts through the lifetime, and the client's
// request context tells it when it ends.
var (
	_ fastpath.Attempt = (*lifetime)(nil)
	_ fastpath.Watcher = (*lifetime)(nil)
)

// outChecker is an attempt that knows whether its backend went out.
type outChecker interface {
	backendOut() bool
}

// errAttemptDone is the cause of an attempt that ended because its
// response was done with (or it failed and the loop moved on).
var errAttemptDone = errors.New("attempt done")

// startLifetime starts an attempt's lifetime under the client's context,
// with a per-try limit when limit > 0.
func startLifetime(client context.Context, limit time.Duration) *lifetime {
	l := &lifetime{}
	l.begin(client, limit, nil)
	return l
}

// begin starts l under the client's context; when limit > 0, fire (or,
// if nil, the end of l as timed out) runs once limit has passed. A
// client's context that takes a watcher of its own (h1server's) is told
// to tell l directly: context.AfterFunc would wrap the registration in a
// cancel context of its own, with its channel and its place in a map; the
// context's own AfterFunc method would still allocate the registration,
// its stop function and the lifetime's method value; Watch allocates
// nothing.
func (l *lifetime) begin(client context.Context, limit time.Duration, fire func()) {
	l.client = client
	w, ok := client.(fastpath.Watchable)
	took(pathWatch, ok)
	if ok {
		l.watched = w
		w.Watch(l)
	} else {
		l.stopWatch = context.AfterFunc(client, l.clientGone)
	}
	if limit > 0 {
		if fire == nil {
			fire = l.timedOut
		}
		// Under the lock: a timer that fires before the assignment (a
		// short limit on a busy host) reads it under the lock too.
		l.mu.Lock()
		l.timer = time.AfterFunc(limit, fire)
		l.mu.Unlock()
	}
}

// ContextDone is the client's context telling its watcher it ended.
func (l *lifetime) ContextDone() { l.clientGone() }

func (l *lifetime) clientGone() { l.end(context.Cause(l.client)) }
func (l *lifetime) timedOut()   { l.end(errPerTryTimeout) }

// headArrived stops the per-try timer, now that the response head is
// here, and reports whether the lifetime ended first (the timer ended it,
// or another attempt won): the head came too late to use.
func (l *lifetime) headArrived() (ended bool) {
	stopped := l.timer == nil || l.timer.Stop()
	if !l.shared {
		return !stopped // a timer that fired ends the lifetime
	}
	l.mu.Lock()
	l.headed = true
	if !stopped {
		// A per-try timer that fired may have set itself again for the
		// request's deadline before this took the lock.
		l.timer.Stop()
	}
	ended = l.cause != nil
	l.mu.Unlock()
	return ended
}

// end ends the lifetime with cause, if it has not ended yet, and runs the
// abort that was set.
func (l *lifetime) end(cause error) {
	l.mu.Lock()
	abort := l.endLocked(cause)
	l.mu.Unlock()
	if abort != nil {
		abort()
	}
}

// endLocked ends the lifetime with cause, if it has not ended yet, and
// returns the abort to run once the lock is released. The caller holds
// l.mu.
func (l *lifetime) endLocked(cause error) func() {
	if l.cause != nil {
		return nil
	}
	l.cause = cause
	abort := l.abort
	l.abort = nil
	return abort
}

// finish ends the lifetime for good: its watches stop, and an abort still
// set runs (an upgraded connection is closed this way).
func (l *lifetime) finish() {
	if l.watched != nil {
		l.watched.Unwatch(l)
	} else {
		l.stopWatch()
	}
	if l.timer != nil {
		l.timer.Stop()
	}
	l.end(errAttemptDone)
}

// Cause is why the lifetime ended, or nil while it runs.
func (l *lifetime) Cause() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cause
}

// OnEnd sets f to run when the lifetime ends, until Clear. If it has
// already ended, f runs now.
func (l *lifetime) OnEnd(f func()) {
	l.mu.Lock()
	if l.cause != nil {
		l.mu.Unlock()
		f()
		return
	}
	l.abort = f
	l.mu.Unlock()
}

// Clear unsets the abort; it reports whether the lifetime is still
// running, so that the abort did not run and will not.
func (l *lifetime) Clear() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.abort = nil
	return l.cause == nil
}

// SendAgain reports whether the transport may send the attempt's request
// again on a new connection after a reused one failed: the lifetime runs,
// and health did not take its backend out meanwhile (out; a trial has
// none, its backend being out already), in which case the attempt loop
// sends it elsewhere.
func (l *lifetime) SendAgain() bool {
	return l.Cause() == nil && (l.out == nil || !l.out.backendOut())
}
