package loadtest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"syscall"

	"github.com/quic-go/quic-go"
)

// ErrorClass groups transport failures by what an operator would do about
// them: a timeout points at a slow or silent peer, refused at a closed port,
// reset at a peer that gave up mid-exchange, tls at certificates.
type ErrorClass uint8

// The error classes, in report order. classNone marks a request that got a
// complete response.
const (
	classNone ErrorClass = iota
	ClassTimeout
	ClassRefused
	ClassReset
	ClassTLS
	ClassOther
	numClasses
)

var classNames = [numClasses]string{"", "timeout", "refused", "reset", "tls", "other"}

// String returns the class's report name.
func (c ErrorClass) String() string { return classNames[c] }

// Classify sorts a request error into its class. The order matters: a
// timeout wrapped in a TLS handshake error is still a timeout.
func Classify(err error) ErrorClass {
	if err == nil {
		return classNone
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) ||
		(errors.As(err, &ne) && ne.Timeout()) {
		return ClassTimeout
	}
	var idle *quic.IdleTimeoutError
	var hs *quic.HandshakeTimeoutError
	if errors.As(err, &idle) || errors.As(err, &hs) {
		return ClassTimeout
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return ClassRefused
	}
	var rh tls.RecordHeaderError
	var ae tls.AlertError
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	var ve *tls.CertificateVerificationError
	if errors.As(err, &rh) || errors.As(err, &ae) || errors.As(err, &ua) ||
		errors.As(err, &he) || errors.As(err, &ci) || errors.As(err, &ve) {
		return ClassTLS
	}
	if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return ClassReset
	}
	var se *quic.StreamError
	var ae3 *quic.ApplicationError
	var te *quic.TransportError
	if errors.As(err, &se) || errors.As(err, &ae3) || errors.As(err, &te) {
		return ClassReset
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "connection reset"), strings.Contains(msg, "broken pipe"),
		strings.Contains(msg, "stream error"), strings.Contains(msg, "server closed"),
		strings.Contains(msg, "unexpected EOF"):
		// net/http's HTTP/2 client reports resets and GOAWAYs as plain strings.
		return ClassReset
	case strings.Contains(msg, "tls:"), strings.Contains(msg, "x509:"):
		return ClassTLS
	case strings.Contains(msg, "connection refused"):
		return ClassRefused
	case strings.Contains(msg, "timeout"):
		return ClassTimeout
	}
	return ClassOther
}
