// Package fastpath names the contracts by which the proxy takes a cheaper
// path when a value it is handed offers one: a request context that takes
// a watcher of its own, a response writer that adopts a header map, a
// transport that sends within the proxy's attempt, a response body that
// tells whether its next read would wait.
//
// Each such path is found by a type assertion, and a type assertion fails
// silently the first time someone wraps the value: the slow path still
// works, so nothing but the cost tells. Naming each contract once, here,
// lets every provider prove at compile time that it fits
// (var _ fastpath.Watchable = (*requestContext)(nil)) and every consumer's
// tests prove that the path is really taken with the real providers.
//
// The providers are internal/h1server (Watchable, HeaderAdopter) and
// internal/h1client (AttemptSender, Waiter); the consumer is proxy. It
// imports nothing of the project, so that all of them can import it.
package fastpath

import (
	"net/http"
	"net/textproto"
)

// A Watcher is told, once, that a request's context has ended.
type Watcher interface{ ContextDone() }

// Watchable is a request context that tells a watcher of its own when it
// ends, as h1server's do. context.AfterFunc would wrap the registration in
// a cancel context of its own, with its channel and its place in a map;
// Watch allocates nothing.
type Watchable interface {
	// Watch arranges for w.ContextDone to run on its own goroutine once
	// the context ends; if it has ended, it starts now. w must be
	// comparable: Unwatch finds it by ==.
	Watch(w Watcher)
	// Unwatch removes w and reports whether that kept it from being told
	// (context.AfterFunc's stop contract).
	Unwatch(w Watcher) bool
}

// HeaderAdopter is a response writer that can take a header map as its
// own, as h1server's can: a proxy hands over the header it read from its
// backend rather than copying it field by field into a new map.
type HeaderAdopter interface {
	// AdoptHeader makes h the response's header if nothing asked for the
	// header yet, and reports whether it did.
	AdoptHeader(h http.Header) bool
}

// Attempt is the span one exchange of an AttemptSender runs in: its end
// aborts the exchange (the connection in use is closed), so a per-try
// timeout or a client that left cuts a hung dial, read or write.
type Attempt interface {
	// OnEnd sets abort to run once the attempt ends, in place of any set
	// before, until Clear; if the attempt has ended, abort runs now.
	OnEnd(abort func())
	// Clear unsets the abort and reports whether the attempt still runs,
	// so that the abort did not run and will not.
	Clear() bool
	// SendAgain reports whether the request may still go out on a
	// connection just made (for the first send, or again after a reused
	// connection failed before any response byte): the attempt runs, and
	// its backend was not taken out meanwhile.
	SendAgain() bool
}

// AttemptSender is a transport that sends within the caller's attempt, as
// h1client's does, in place of a context per attempt that the attempt's
// end cancels and an httptrace hook for 1xx responses.
type AttemptSender interface {
	// Send sends req and reads the response head, within a. got1xx, if
	// not nil, receives the 1xx responses on the caller's goroutine before
	// the final one returns. The request's context is not consulted.
	Send(req *http.Request, a Attempt, got1xx func(int, textproto.MIMEHeader) error) (*http.Response, error)
}

// Waiter is a response body that knows whether its next read would wait
// on the backend, as h1client's do: a proxy then sends a streamed
// response's head at once rather than with its first bytes.
type Waiter interface {
	// Waiting reports whether nothing of the body has arrived beyond what
	// was read.
	Waiting() bool
}
