package proxy

import (
	"errors"
	"net/http"
	"sync"
)

// maxInformational bounds the 1xx responses (103 Early Hints, 100
// Continue...) passed to a client for one request. A transport with a
// forwarding hook resets its header limit after each 1xx (the proxy's
// HTTP/1.1 transport and net/http's do), so a backend writing
// 1xx responses without end would stream them to the client until the
// per-try timeout. Past the bound the attempt ends and the client gets 502.
const maxInformational = 16

// errTooManyInformational ends an attempt whose backend sent more than
// maxInformational 1xx responses.
var errTooManyInformational = errors.New("too many 1xx responses")

// informational counts a request's forwarded 1xx responses. The hook is
// never called after its attempt's RoundTrip returns (see
// informationalHook), but a cancelled attempt's transport goroutine may
// still report while the next attempt starts, so the stop function is
// guarded.
type informational struct {
	mu   sync.Mutex
	n    int
	stop func(error) // ends the current attempt
}

// attempt installs the current attempt's cancel function.
func (i *informational) attempt(stop func(error)) {
	i.mu.Lock()
	i.stop = stop
	i.mu.Unlock()
}

// allow counts one 1xx response and reports whether it may be forwarded;
// past the bound it ends the attempt instead.
func (i *informational) allow() bool {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.n++
	if i.n <= maxInformational {
		return true
	}
	if i.stop != nil {
		i.stop(errTooManyInformational)
	}
	return false
}

// forwardInformational reports whether code is a 1xx response that the
// forwarder passes on from its hook (101 ends the exchange instead).
func forwardInformational(code int) bool {
	return code >= 100 && code < 200 && code != http.StatusSwitchingProtocols
}
