package edgetls

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
)

// certEntry is one loaded certificate/key pair. It is immutable once built.
type certEntry struct {
	files CertFile
	cert  *tls.Certificate
	leaf  *x509.Certificate
	// name labels the certificate in metrics and logs: the first DNS SAN,
	// else the subject CN, else the first IP SAN, else the file's base name.
	name string
	// sum is a digest of both files' bytes, so a reload that reads the same
	// bytes changes nothing.
	sum [sha256.Size]byte
}

// loadPair reads and checks one pair: both files parse and the key matches
// the leaf's public key. New, Reload, BackendTLSConfig and Check all load
// pairs through it, so azimuth validate refuses what a reload refuses. Its
// errors are *pairError, which says which of the two files is at fault.
func loadPair(cf CertFile) (*certEntry, error) {
	certPEM, err := os.ReadFile(cf.CertFile)
	if err != nil {
		return nil, &pairError{err: fmt.Errorf("reading certificate: %w", err)}
	}
	keyPEM, err := os.ReadFile(cf.KeyFile)
	if err != nil {
		return nil, &pairError{key: true, err: fmt.Errorf("reading key: %w", err)}
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		// X509KeyPair does not say which input failed; a certificate file
		// that yields a leaf on its own leaves the key to blame.
		_, leafErr := parseLeaf(certPEM)
		return nil, &pairError{key: leafErr == nil, err: fmt.Errorf("parsing pair %s + %s: %w", cf.CertFile, cf.KeyFile, err)}
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, &pairError{err: fmt.Errorf("parsing leaf of %s: %w", cf.CertFile, err)}
		}
		cert.Leaf = leaf
	}
	h := sha256.New()
	h.Write(certPEM)
	h.Write([]byte{0})
	h.Write(keyPEM)
	e := &certEntry{files: cf, cert: &cert, leaf: leaf, name: certName(leaf, cf)}
	copy(e.sum[:], h.Sum(nil))
	return e, nil
}

// pairError is why loadPair failed. Its text is the error alone, as logs
// have always shown it; key tells Check to blame key_file, not cert_file
// (the two may even name one file).
type pairError struct {
	key bool
	err error
}

func (e *pairError) Error() string { return e.err.Error() }
func (e *pairError) Unwrap() error { return e.err }

// parseLeaf parses the first CERTIFICATE block of a chain, the one
// tls.X509KeyPair takes as the leaf.
func parseLeaf(certPEM []byte) (*x509.Certificate, error) {
	for rest := certPEM; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("no CERTIFICATE PEM block")
		}
		if block.Type == "CERTIFICATE" {
			return x509.ParseCertificate(block.Bytes)
		}
	}
}

// certName picks the label a person would recognise the certificate by.
func certName(leaf *x509.Certificate, cf CertFile) string {
	switch {
	case len(leaf.DNSNames) > 0:
		return leaf.DNSNames[0]
	case leaf.Subject.CommonName != "":
		return leaf.Subject.CommonName
	case len(leaf.IPAddresses) > 0:
		return leaf.IPAddresses[0].String()
	}
	return filepath.Base(cf.CertFile)
}

// snapshot is one immutable generation of the store, published through an
// atomic.Pointer. It is never written after publication.
type snapshot struct {
	// entries are in configuration order; entries[0] is the default.
	entries []*certEntry
	// byName maps lower-case DNS SANs, wildcards kept as "*.example.com",
	// to the entries that carry them, in configuration order.
	byName map[string][]*certEntry
	// byIP maps IP SANs to entries.
	byIP map[netip.Addr][]*certEntry
}

// newSnapshot indexes entries by their SANs.
func newSnapshot(entries []*certEntry) *snapshot {
	s := &snapshot{
		entries: entries,
		byName:  make(map[string][]*certEntry),
		byIP:    make(map[netip.Addr][]*certEntry),
	}
	for _, e := range entries {
		for _, n := range e.leaf.DNSNames {
			n = strings.ToLower(strings.TrimSuffix(n, "."))
			s.byName[n] = append(s.byName[n], e)
		}
		for _, ip := range e.leaf.IPAddresses {
			if a, ok := netip.AddrFromSlice(ip); ok {
				a = a.Unmap()
				s.byIP[a] = append(s.byIP[a], e)
			}
		}
	}
	return s
}

// certificate chooses the certificate for a ClientHello: an exact DNS SAN,
// then a wildcard one label deep, then an IP SAN matching the SNI (some
// clients send IP literals) or, with no SNI, the local address the client
// dialled; else the default. Among several candidates it prefers one the
// client can verify (for example ECDSA versus RSA).
func (s *snapshot) certificate(hello *tls.ClientHelloInfo) *tls.Certificate {
	name := strings.ToLower(strings.TrimSuffix(hello.ServerName, "."))
	if name != "" {
		if ip, err := netip.ParseAddr(name); err == nil {
			if c := pick(hello, s.byIP[ip.Unmap()]); c != nil {
				return c
			}
		} else {
			if c := pick(hello, s.byName[name]); c != nil {
				return c
			}
			if i := strings.IndexByte(name, '.'); i > 0 {
				if c := pick(hello, s.byName["*"+name[i:]]); c != nil {
					return c
				}
			}
		}
	} else if hello.Conn != nil {
		if ap, err := netip.ParseAddrPort(hello.Conn.LocalAddr().String()); err == nil {
			if c := pick(hello, s.byIP[ap.Addr().Unmap()]); c != nil {
				return c
			}
		}
	}
	return s.entries[0].cert
}

// pick returns the first candidate the client supports, else the first one,
// else nil.
func pick(hello *tls.ClientHelloInfo, cands []*certEntry) *tls.Certificate {
	switch len(cands) {
	case 0:
		return nil
	case 1:
		return cands[0].cert
	}
	for _, e := range cands {
		if hello.SupportsCertificate(e.cert) == nil {
			return e.cert
		}
	}
	return cands[0].cert
}
