package proxy

import (
	"context"
	"errors"
	"net/http"
	"sync"
)

// maxInformational bounds the 1xx responses (103 Early Hints, 100
// Continue...) passed to a client for one request. ReverseProxy forwards
// every 1xx a backend sends, and with a forwarding hook net/http's
// transport resets its header limit after each one, so a backend writing
// 1xx responses without end would stream them to the client until the
// per-try timeout. Past the bound the attempt ends and the client gets 502.
const maxInformational = 16

// errTooManyInformational ends an attempt whose backend sent more than
// maxInformational 1xx responses.
var errTooManyInformational = errors.New("too many 1xx responses")

// informational counts a request's forwarded 1xx responses. ReverseProxy
// calls its 1xx hook from the transport's goroutine and never after its
// RoundTrip returns, but a cancelled attempt's goroutine may still report
// while the next attempt starts, so the stop function is guarded.
type informational struct {
	mu   sync.Mutex
	n    int
	stop context.CancelCauseFunc // ends the current attempt
}

// attempt installs the current attempt's cancel function.
func (i *informational) attempt(stop context.CancelCauseFunc) {
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

// forwardInformational reports whether code is a 1xx response that
// ReverseProxy forwards from its hook (101 ends the exchange instead).
func forwardInformational(code int) bool {
	return code >= 100 && code < 200 && code != http.StatusSwitchingProtocols
}
