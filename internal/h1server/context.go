package h1server

import (
	"context"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/azimuthproxy/azimuth/internal/fastpath"
)

// requestContext is a request's context. It ends when the handler
// returns, when the watch sees the client leave, when a write to the
// client fails and when the connection ends, as the contexts net/http's
// server gives its requests do. It carries no values and no deadline.
//
// It is context.WithCancel's context without the tree: the connection
// ends it directly rather than as a parent, its Done channel is made only
// when asked for, and its AfterFunc method (which context.AfterFunc and
// the contexts derived from it use in place of a child in a map) costs
// one registration. A proxy watching for its client calls that method on
// every request.
type requestContext struct {
	mu     sync.Mutex
	done   chan struct{} // made by Done, or closedChan once ended first
	err    error
	funcs  []fastpath.Watcher // registered by Watch or AfterFunc, not yet removed
	inline [1]fastpath.Watcher
	// local is the connection's local address, the value of
	// http.LocalAddrContextKey as net/http's server gives it (a proxy
	// sending the PROXY protocol names it as the client's destination).
	local net.Addr
}

// A proxy watching for its client finds Watch and Unwatch through this
// contract.
var _ fastpath.Watchable = (*requestContext)(nil)

var closedChan = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

func newRequestContext() *requestContext {
	r := &requestContext{}
	r.funcs = r.inline[:0]
	return r
}

func (r *requestContext) Deadline() (time.Time, bool) { return time.Time{}, false }
func (r *requestContext) Value(key any) any {
	if key == http.LocalAddrContextKey && r.local != nil {
		return r.local
	}
	return nil
}
func (r *requestContext) String() string { return "h1server request context" }

func (r *requestContext) Done() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done == nil {
		if r.err != nil {
			r.done = closedChan
		} else {
			r.done = make(chan struct{})
		}
	}
	return r.done
}

func (r *requestContext) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// cancel ends the context, once; each function registered and not
// stopped runs on its own goroutine, as with context.AfterFunc.
func (r *requestContext) cancel() {
	r.mu.Lock()
	if r.err != nil {
		r.mu.Unlock()
		return
	}
	r.err = context.Canceled
	if r.done == nil {
		r.done = closedChan
	} else {
		close(r.done)
	}
	funcs := r.funcs
	r.funcs = nil
	r.mu.Unlock()
	for _, w := range funcs {
		go w.ContextDone()
	}
}

// Watch arranges for w.ContextDone to run on its own goroutine once the
// context ends; if it has ended, it starts now. w must be comparable (a
// pointer, say): Unwatch finds it by ==. It is AfterFunc for a value that
// has a ContextDone method already: registering it allocates nothing,
// where AfterFunc allocates its registration and its stop function.
func (r *requestContext) Watch(w fastpath.Watcher) {
	r.mu.Lock()
	if r.err != nil {
		r.mu.Unlock()
		go w.ContextDone()
		return
	}
	r.funcs = append(r.funcs, w)
	r.mu.Unlock()
}

// Unwatch removes w, registered by Watch, and reports whether that kept
// it from being told (context.AfterFunc's stop contract).
func (r *requestContext) Unwatch(w fastpath.Watcher) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, v := range r.funcs {
		if v == w {
			last := len(r.funcs) - 1
			r.funcs[i] = r.funcs[last]
			r.funcs[last] = nil
			r.funcs = r.funcs[:last]
			return true
		}
	}
	return false
}

// afterFunc is one AfterFunc registration.
type afterFunc struct {
	r *requestContext
	f func()
}

func (a *afterFunc) ContextDone() { a.f() }

// AfterFunc arranges for f to run on its own goroutine once the context
// ends; if it has ended, f starts now. stop unregisters f and reports
// whether that kept it from running (context.AfterFunc's contract).
func (r *requestContext) AfterFunc(f func()) (stop func() bool) {
	a := &afterFunc{r: r, f: f}
	r.Watch(a)
	return a.stop
}

func (a *afterFunc) stop() bool { return a.r.Unwatch(a) }
