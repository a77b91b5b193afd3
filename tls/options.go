package edgetls

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Defaults applied by Options.withDefaults. They are exported so that the
// config package can document the same values.
const (
	DefaultTicketKeyRotation = 12 * time.Hour
	DefaultTicketKeysKept    = 2
	DefaultReloadDebounce    = 250 * time.Millisecond
	DefaultExpiryWarning     = 14 * 24 * time.Hour
)

// CertFile names one certificate chain and its private key on disk, both PEM.
type CertFile struct {
	// CertFile is the PEM chain, leaf first.
	CertFile string
	// KeyFile is the PEM private key matching the leaf.
	KeyFile string
}

// Options configures the TLS source of one listener. It mirrors the
// listener's tls: block in the config file; cmd/azimuth converts into it.
type Options struct {
	// Listener names the listener in logs and in the metric label.
	Listener string
	// Certs are the certificate/key pairs served. The first one is the
	// default for clients that send no SNI or a name no certificate covers.
	// May be empty when Managed is set.
	Certs []CertFile
	// Managed, when set, holds certificates obtained by ACME: a name it
	// manages is served its certificate, and it answers TLS-ALPN-01
	// challenges. Names it does not manage, and a managed one it has no
	// certificate for yet, are served from Certs.
	Managed Managed
	// MinVersion is "1.2" (default, also when empty) or "1.3".
	MinVersion string
	// ClientCAFile is a PEM bundle of CAs that sign client certificates.
	// Required when ClientAuth is not "none".
	ClientCAFile string
	// ClientAuth is "none" (default, also when empty), "require" or
	// "verify_if_given".
	ClientAuth string
	// TicketKeyRotation is how often a new session ticket key is made.
	// Zero means DefaultTicketKeyRotation.
	TicketKeyRotation time.Duration
	// TicketKeysKept is how many previous ticket keys still decrypt tickets,
	// so clients resume across rotations. Zero means DefaultTicketKeysKept.
	TicketKeysKept int
	// ReloadDebounce is how long file events must stay quiet before the
	// files are read again, so a multi-step replace is read once, whole.
	// Zero means DefaultReloadDebounce.
	ReloadDebounce time.Duration
	// ExpiryWarning is the remaining validity under which a warning is
	// logged at load and daily. Zero means DefaultExpiryWarning.
	ExpiryWarning time.Duration
}

// Managed is a source of certificates beside the files: the listener's
// ACME manager.
type Managed interface {
	// Certificate answers hello when it asks for a name the manager
	// manages or is an ACME TLS-ALPN-01 challenge (ok true); err says why
	// there is no certificate yet.
	Certificate(hello *tls.ClientHelloInfo) (cert *tls.Certificate, ok bool, err error)
}

// ProtoACMETLS is the ALPN protocol of ACME's TLS-ALPN-01 challenge (RFC
// 8737), offered when a listener has a Managed source.
const ProtoACMETLS = "acme-tls/1"

// Deps are the run-time collaborators of a Source; all are optional.
type Deps struct {
	// Metrics exports the Source's certificate expiry; shared by all
	// listeners on one Registerer. Nil means no metrics.
	Metrics *Metrics
	// Logger receives reload and expiry messages. Nil means slog.Default().
	Logger *slog.Logger
	// Clock drives ticket rotation, expiry warnings and the expiry gauge.
	// Nil means the wall clock.
	Clock Clock
}

// withDefaults returns o with zero values replaced by defaults.
func (o Options) withDefaults() Options {
	if o.MinVersion == "" {
		o.MinVersion = "1.2"
	}
	if o.ClientAuth == "" {
		o.ClientAuth = "none"
	}
	if o.TicketKeyRotation == 0 {
		o.TicketKeyRotation = DefaultTicketKeyRotation
	}
	if o.TicketKeysKept == 0 {
		o.TicketKeysKept = DefaultTicketKeysKept
	}
	if o.ReloadDebounce == 0 {
		o.ReloadDebounce = DefaultReloadDebounce
	}
	if o.ExpiryWarning == 0 {
		o.ExpiryWarning = DefaultExpiryWarning
	}
	return o
}

// Validate reports every problem in o (after defaults) at once.
func (o Options) Validate() error {
	var errs []error
	if len(o.Certs) == 0 && o.Managed == nil {
		errs = append(errs, errors.New("certificates: at least one cert_file/key_file pair is required"))
	}
	for i, c := range o.Certs {
		if c.CertFile == "" {
			errs = append(errs, fmt.Errorf("certificates[%d].cert_file: empty", i))
		}
		if c.KeyFile == "" {
			errs = append(errs, fmt.Errorf("certificates[%d].key_file: empty", i))
		}
	}
	if _, err := parseMinVersion(o.MinVersion); err != nil {
		errs = append(errs, err)
	}
	auth, err := parseClientAuth(o.ClientAuth)
	if err != nil {
		errs = append(errs, err)
	}
	if err == nil && auth != tls.NoClientCert && o.ClientCAFile == "" {
		errs = append(errs, fmt.Errorf("client_ca_file: required when client_auth is %q", o.ClientAuth))
	}
	if o.TicketKeyRotation < 0 {
		errs = append(errs, fmt.Errorf("ticket key rotation: %s is negative", o.TicketKeyRotation))
	}
	if o.TicketKeysKept < 0 {
		errs = append(errs, fmt.Errorf("ticket keys kept: %d is negative", o.TicketKeysKept))
	}
	if o.ReloadDebounce < 0 {
		errs = append(errs, fmt.Errorf("reload debounce: %s is negative", o.ReloadDebounce))
	}
	return errors.Join(errs...)
}

// parseMinVersion maps the config spelling to a crypto/tls version.
func parseMinVersion(s string) (uint16, error) {
	switch s {
	case "", "1.2":
		return tls.VersionTLS12, nil
	case "1.3":
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("min_version: %q is not one of \"1.2\", \"1.3\"", s)
}

// parseClientAuth maps the config spelling to a crypto/tls policy.
// "verify_if_given" still verifies a certificate that is sent.
func parseClientAuth(s string) (tls.ClientAuthType, error) {
	switch s {
	case "", "none":
		return tls.NoClientCert, nil
	case "require":
		return tls.RequireAndVerifyClientCert, nil
	case "verify_if_given":
		return tls.VerifyClientCertIfGiven, nil
	}
	return 0, fmt.Errorf("client_auth: %q is not one of \"none\", \"require\", \"verify_if_given\"", s)
}
