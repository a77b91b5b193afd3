package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/azimuthproxy/azimuth/internal/h1client"
)

// Cause is why an attempt did not produce a usable response.
type Cause uint8

const (
	// CauseNone: the attempt got a response that is passed to the client.
	CauseNone Cause = iota
	// CauseConnect: the connection to the backend could not be made
	// (refused, unreachable, connect timeout, TLS handshake failure). The
	// backend never saw the request.
	CauseConnect
	// CauseTimeout: no response headers within the per-try timeout.
	CauseTimeout
	// CauseReset: the connection broke before the response headers.
	CauseReset
	// CauseStatus: the backend answered with a status listed in retry.on.
	CauseStatus
	// CauseClientGone: the client cancelled or disconnected. Never retried,
	// never held against the backend.
	CauseClientGone
	// CauseOther: any other transport error (malformed response...).
	CauseOther
	// CauseCancelled: another attempt of the request got its response
	// first, and this one was cancelled before it was past its per-try
	// time. Not held against the backend.
	CauseCancelled
	// CauseOut: not an outcome but why a hedge started: the backend of an
	// attempt still waiting for its response was taken out (ejected, down,
	// drained). Always a reason to move a replayable request, whatever
	// retry.on says.
	CauseOut
	// CauseUnsent: the backend was taken out between the pick and the
	// send, so the attempt sent nothing. Like a connect failure, safe to
	// replay for any method; not held against the backend, which is out
	// already; always retried, whatever retry.on says.
	CauseUnsent
	numCauses
)

var causeNames = [numCauses]string{"ok", "connect_failure", "timeout", "reset", "status", "client_gone", "error", "cancelled", "backend_out", "unsent"}

// String returns the name used in retry.on, metrics and logs.
func (c Cause) String() string {
	if c < numCauses {
		return causeNames[c]
	}
	return "unknown"
}

// BackendFault reports whether the cause counts against the backend for
// passive outlier detection. A status counts by the pool's own list
// (PoolConfig.FailStatuses), not by being retryable.
func (c Cause) BackendFault() bool {
	return c == CauseConnect || c == CauseTimeout || c == CauseReset || c == CauseOther
}

// errPerTryTimeout ends an attempt whose per-try timer fired, or, for an
// attempt that hedges, whose request ran out of time.
var errPerTryTimeout = errors.New("per-try timeout")

// errLostRace ends an attempt because another attempt of its request got
// its response first.
var errLostRace = errors.New("another attempt answered first")

// errUnsent fails an attempt whose backend went out before its request
// was sent.
var errUnsent = errors.New("backend taken out before the request was sent")

// classify maps a RoundTrip error to a Cause. ended is why the attempt's
// lifetime ended (nil if it has not) and clientCtx the inbound request's
// context, so a timeout of ours and a client that left are told apart
// from the transport's own errors.
func classify(err error, ended error, clientCtx context.Context) Cause {
	switch {
	case err == nil:
		return CauseNone
	case clientCtx.Err() != nil:
		return CauseClientGone
	case ended == errPerTryTimeout:
		return CauseTimeout
	case ended == errLostRace:
		return CauseCancelled
	case errors.Is(err, h1client.ErrBackendOut):
		return CauseUnsent
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return CauseConnect
	}
	var rec tls.RecordHeaderError
	var cve *tls.CertificateVerificationError
	if errors.As(err, &rec) || errors.As(err, &cve) {
		return CauseConnect
	}
	if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return CauseReset
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return CauseTimeout
	}
	return CauseOther
}
