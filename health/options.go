package health

import (
	"crypto/tls"
	"errors"
	"fmt"
	"time"
)

// Schemes a Checker speaks to backends.
const (
	SchemeHTTP  = "http"  // HTTP/1.1 over TCP (the default)
	SchemeHTTPS = "https" // HTTP/1.1 or HTTP/2 over TLS, by ALPN
	SchemeH2C   = "h2c"   // HTTP/2 cleartext with prior knowledge
	SchemeH2    = "h2"    // HTTP/2 over TLS only
)

// Default status range a check expects when ExpectMin and ExpectMax are 0.
const (
	DefaultExpectMin = 200
	DefaultExpectMax = 399
)

// DefaultMaxConcurrent bounds the checks one Checker runs at once, so a pool
// of thousands of backends costs a fixed number of goroutines.
const DefaultMaxConcurrent = 32

// ActiveOptions configure a pool's HTTP health checks. cmd/azimuth fills
// them from the config file, where defaults are applied.
type ActiveOptions struct {
	// Path is the request path; "" means "/".
	Path string
	// Host is the Host header sent; "" means the backend's address.
	Host string
	// ExpectMin and ExpectMax bound the passing statuses, inclusive; both
	// 0 means 200-399.
	ExpectMin, ExpectMax int
	// Interval between two checks of one backend, jittered by ±10% so a
	// pool's checks do not march in step.
	Interval time.Duration
	// FastInterval, when set, replaces Interval while a backend's state is
	// in doubt: it failed a check but is not Down yet, or passed one but is
	// not Up yet. It shortens detection to about Interval + (Fall-1) ×
	// FastInterval + Timeout without probing healthy backends more often.
	// 0 means Interval.
	FastInterval time.Duration
	// Timeout bounds one check: connect, TLS, request and response headers.
	Timeout time.Duration
	// Rise is how many passing checks in a row bring a Down backend Up.
	Rise int
	// Fall is how many failing checks in a row take an Up backend Down.
	Fall int
	// Scheme is http (default), https, h2c or h2.
	Scheme string
	// TLSConfig is used by https and h2; nil means Go's defaults.
	TLSConfig *tls.Config
	// ProxyHeader, when set, is written first on every check's connection,
	// before TLS: a PROXY protocol LOCAL header for backends that require
	// one from the proxy (a pool with send_proxy_protocol).
	ProxyHeader []byte
	// MaxConcurrent bounds checks in flight; 0 means DefaultMaxConcurrent.
	MaxConcurrent int
}

// withDefaults returns o with its documented zero-value meanings filled in.
func (o ActiveOptions) withDefaults() ActiveOptions {
	if o.Path == "" {
		o.Path = "/"
	}
	if o.ExpectMin == 0 && o.ExpectMax == 0 {
		o.ExpectMin, o.ExpectMax = DefaultExpectMin, DefaultExpectMax
	}
	if o.Scheme == "" {
		o.Scheme = SchemeHTTP
	}
	if o.FastInterval == 0 {
		o.FastInterval = o.Interval
	}
	if o.MaxConcurrent == 0 {
		o.MaxConcurrent = DefaultMaxConcurrent
	}
	return o
}

// Validate reports every problem NewChecker or Configure would refuse o
// for, so a reload can find them before it changes anything.
func (o ActiveOptions) Validate() error { return o.withDefaults().validate() }

// validate reports every problem with o, after defaults.
func (o ActiveOptions) validate() error {
	var errs []error
	if o.Path[0] != '/' {
		errs = append(errs, fmt.Errorf("path %q must start with /", o.Path))
	}
	if o.ExpectMin < 100 || o.ExpectMax > 599 || o.ExpectMin > o.ExpectMax {
		errs = append(errs, fmt.Errorf("expected status range %d-%d is not within 100-599", o.ExpectMin, o.ExpectMax))
	}
	if o.Interval <= 0 {
		errs = append(errs, fmt.Errorf("interval %v must be positive", o.Interval))
	}
	if o.FastInterval < 0 {
		errs = append(errs, fmt.Errorf("fast interval %v must not be negative", o.FastInterval))
	}
	if o.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("timeout %v must be positive", o.Timeout))
	}
	if o.Rise < 1 {
		errs = append(errs, fmt.Errorf("rise %d must be at least 1", o.Rise))
	}
	if o.Fall < 1 {
		errs = append(errs, fmt.Errorf("fall %d must be at least 1", o.Fall))
	}
	switch o.Scheme {
	case SchemeHTTP, SchemeHTTPS, SchemeH2C, SchemeH2:
	default:
		errs = append(errs, fmt.Errorf("scheme %q is not one of http, https, h2c, h2", o.Scheme))
	}
	if o.MaxConcurrent < 0 {
		errs = append(errs, fmt.Errorf("max concurrent checks %d must not be negative", o.MaxConcurrent))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid active health options: %w", err)
	}
	return nil
}

// MaxBackoff caps an ejection's length at this many times PassiveOptions.Ejection.
const MaxBackoff = 10

// PassiveOptions configure outlier detection on real traffic.
type PassiveOptions struct {
	// ConsecutiveFailures ejects a backend after this many failed attempts
	// in a row; 0 turns detection off.
	ConsecutiveFailures int
	// Ejection is the first ejection's length. The n-th recent ejection
	// lasts n × Ejection, capped at MaxBackoff × Ejection. The count of
	// recent ejections drops by one for every Ejection-long period the
	// backend spends without being ejected.
	Ejection time.Duration
	// MaxEjectedPercent caps the share of the pool's backends ejected at
	// once (0..100), though one backend may always be ejected when none is.
	MaxEjectedPercent int
}

// Validate reports every problem NewDetector or Configure would refuse o
// for, so a reload can find them before it changes anything.
func (o PassiveOptions) Validate() error { return o.validate() }

func (o PassiveOptions) validate() error {
	var errs []error
	if o.ConsecutiveFailures < 0 {
		errs = append(errs, fmt.Errorf("consecutive failures %d must not be negative", o.ConsecutiveFailures))
	}
	if o.ConsecutiveFailures > 0 && o.Ejection <= 0 {
		errs = append(errs, fmt.Errorf("ejection %v must be positive", o.Ejection))
	}
	if o.MaxEjectedPercent < 0 || o.MaxEjectedPercent > 100 {
		errs = append(errs, fmt.Errorf("max ejected percent %d must be within 0-100", o.MaxEjectedPercent))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid passive health options: %w", err)
	}
	return nil
}
