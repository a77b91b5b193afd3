package proxy

import "sync/atomic"

// The proxy's fast paths, each found by a type assertion on a value it is
// handed (see internal/fastpath for the contracts):
//   - pathWatch: the client's request context takes the attempt's
//     lifetime as a watcher (h1server's contexts), in place of
//     context.AfterFunc;
//   - pathAdopt: the client's response writer adopts the backend's header
//     map (h1server's writers), in place of a copy;
//   - pathSend: the pool's transport sends within the attempt's lifetime
//     (h1client's), in place of a context the lifetime's end cancels;
//   - pathWaiting: the backend's response body tells whether its next
//     read would wait (h1client's), so a stream's head goes out at once.
//
// TestFastPathsTaken proves each one taken with the values that offer it
// (the proxy on h1server with its own transport) and passed over, with the
// same answer, with values that do not (net/http's server, a wrapped
// transport).
const (
	pathWatch   = "watch"
	pathAdopt   = "adopt"
	pathSend    = "send"
	pathWaiting = "waiting"
)

// pathHook, when a test sets it, hears which way each fast path went:
// fast is false where the value did not offer it. A path that is taken
// shows no difference but its cost, so only a test that asks can tell
// that wrapping a value (a middleware's response writer, a metrics
// wrapper around a transport) silently turned it off.
var pathHook atomic.Pointer[func(path string, fast bool)]

// took tells pathHook, if set, which way path went; otherwise it costs
// one load.
func took(path string, fast bool) {
	if h := pathHook.Load(); h != nil {
		(*h)(path, fast)
	}
}
