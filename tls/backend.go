package edgetls

import (
	"crypto/tls"
	"fmt"
)

// BackendOptions configures TLS from the proxy to one pool's backends.
type BackendOptions struct {
	// CAFile is a PEM bundle of CAs trusted for backends. Empty means the
	// system roots.
	CAFile string
	// ServerName is the name verified in the backend's certificate and sent
	// as SNI. Empty means the host of the address dialled.
	ServerName string
	// CertFile and KeyFile are the proxy's client certificate, for backends
	// that require one. Both or neither.
	CertFile string
	KeyFile  string
}

// BackendTLSConfig builds the client config for backends. Verification is
// always on: there is no option to turn it off, only to name the CA.
func BackendTLSConfig(o BackendOptions) (*tls.Config, error) {
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		ServerName: o.ServerName,
	}
	if o.CAFile != "" {
		cas, err := loadCABundle(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("backend ca_file: %w", err)
		}
		cfg.RootCAs = cas.pool
	}
	switch {
	case o.CertFile != "" && o.KeyFile != "":
		e, err := loadPair(CertFile{CertFile: o.CertFile, KeyFile: o.KeyFile})
		if err != nil {
			return nil, fmt.Errorf("backend client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{*e.cert}
	case o.CertFile != "" || o.KeyFile != "":
		return nil, fmt.Errorf("backend client certificate: cert_file and key_file must be set together")
	}
	return cfg, nil
}
