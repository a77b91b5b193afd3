package edgetls

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math"
	"time"
)

// Problem is one TLS file that New, Reload or BackendTLSConfig would
// refuse, or one certificate they would warn about. Check and CheckBackend
// return them for `azimuth validate`, which puts each on the line of the
// config key named by Key.
type Problem struct {
	// Key is the setting that names the file, spelled as under the config
	// file's tls: block (and as Options.Validate spells it):
	// "certificates[1].key_file" or "client_ca_file" for a listener,
	// "ca_file", "cert_file" or "key_file" for a backend.
	Key string
	// Warning marks a problem that does not stop the file from being used:
	// a certificate with less than the warning period left.
	Warning bool
	// Err says what is wrong; the same text the reload logs for a refused
	// file. A certificate's dates give a *ValidityError.
	Err error
}

// Check reads every file of a listener's options with the functions New
// and Reload load them with (loadPair, loadCABundle), so it refuses exactly
// the files they refuse, and returns a Problem for each. It goes further
// than they do in one respect: a certificate that has expired or is not
// valid yet at now is an error here, where the running proxy serves it and
// logs. One with less than ExpiryWarning left is a warning, as in the log.
func Check(o Options, now time.Time) []Problem {
	o = o.withDefaults()
	var probs []Problem
	for i, cf := range o.Certs {
		probs = append(probs, checkPair(fmt.Sprintf("certificates[%d].", i), cf, now, o.ExpiryWarning)...)
	}
	// New reads the bundle only when it verifies clients; a missing name
	// is Options.Validate's to report.
	if auth, err := parseClientAuth(o.ClientAuth); err == nil && auth != tls.NoClientCert && o.ClientCAFile != "" {
		if _, err := loadCABundle(o.ClientCAFile); err != nil {
			probs = append(probs, Problem{Key: "client_ca_file", Err: err})
		}
	}
	return probs
}

// CheckBackend reads a pool's backend TLS files as BackendTLSConfig does
// and returns a Problem for each it would refuse, plus the client
// certificate's dates judged as Check judges a listener's, with
// DefaultExpiryWarning.
func CheckBackend(o BackendOptions, now time.Time) []Problem {
	var probs []Problem
	if o.CAFile != "" {
		if _, err := loadCABundle(o.CAFile); err != nil {
			probs = append(probs, Problem{Key: "ca_file", Err: err})
		}
	}
	switch {
	case o.CertFile != "" && o.KeyFile != "":
		probs = append(probs, checkPair("", CertFile{CertFile: o.CertFile, KeyFile: o.KeyFile}, now, DefaultExpiryWarning)...)
	case o.CertFile != "":
		probs = append(probs, Problem{Key: "key_file", Err: errors.New("cert_file and key_file must be set together")})
	case o.KeyFile != "":
		probs = append(probs, Problem{Key: "cert_file", Err: errors.New("cert_file and key_file must be set together")})
	}
	return probs
}

// checkPair loads one pair and judges its leaf's dates; prefix goes before
// the keys cert_file and key_file.
func checkPair(prefix string, cf CertFile, now time.Time, warn time.Duration) []Problem {
	e, err := loadPair(cf)
	if err != nil {
		key := "cert_file"
		if pe := (*pairError)(nil); errors.As(err, &pe) && pe.key {
			key = "key_file"
		}
		return []Problem{{Key: prefix + key, Err: err}}
	}
	verr := &ValidityError{Name: e.name, NotBefore: e.leaf.NotBefore, NotAfter: e.leaf.NotAfter, Now: now}
	if now.Before(e.leaf.NotBefore) {
		return []Problem{{Key: prefix + "cert_file", Err: verr}}
	}
	switch expiryOf(e.leaf, now, warn) {
	case expired:
		return []Problem{{Key: prefix + "cert_file", Err: verr}}
	case expiresSoon:
		return []Problem{{Key: prefix + "cert_file", Warning: true, Err: verr}}
	}
	return nil
}

// expiry is where a certificate stands against the end of its validity.
type expiry int

const (
	expiryFar expiry = iota
	expiresSoon
	expired
)

// expiryOf places leaf's NotAfter against now: expired once it is reached,
// expiring soon with less than warn left. The expiry log (warnExpiring)
// and Check both ask it, so they agree on where "soon" starts.
func expiryOf(leaf *x509.Certificate, now time.Time, warn time.Duration) expiry {
	left := leaf.NotAfter.Sub(now)
	switch {
	case left <= 0:
		return expired
	case left < warn:
		return expiresSoon
	}
	return expiryFar
}

// ValidityError is a certificate outside its validity period at Now, or
// near its end. Its text says which, for the certificate a person knows
// by Name.
type ValidityError struct {
	// Name labels the certificate: its first DNS SAN, else its CN, else
	// its first IP SAN, else the file's base name (as in the logs).
	Name                string
	NotBefore, NotAfter time.Time
	Now                 time.Time
}

func (e *ValidityError) Error() string {
	switch {
	case e.Now.Before(e.NotBefore):
		return fmt.Sprintf("certificate for %s is not valid until %s (in %s)", e.Name, stamp(e.NotBefore), roughly(e.NotBefore.Sub(e.Now)))
	case !e.NotAfter.After(e.Now):
		return fmt.Sprintf("certificate for %s expired %s ago (%s)", e.Name, roughly(e.Now.Sub(e.NotAfter)), stamp(e.NotAfter))
	}
	return fmt.Sprintf("certificate for %s expires in %s (%s)", e.Name, roughly(e.NotAfter.Sub(e.Now)), stamp(e.NotAfter))
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// roughly says d as a person would: whole days from a day and a half,
// whole hours from an hour and a half, else minutes.
func roughly(d time.Duration) string {
	switch {
	case d >= 36*time.Hour:
		return fmt.Sprintf("%d days", int(math.Round(d.Hours()/24)))
	case d >= 90*time.Minute:
		return fmt.Sprintf("%d hours", int(math.Round(d.Hours())))
	case d >= 90*time.Second:
		return fmt.Sprintf("%d minutes", int(math.Round(d.Minutes())))
	}
	return "a minute or less"
}
