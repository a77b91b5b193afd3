// Package pki issues throw-away X.509 certificates for the tests and the
// demo: a CA, the leaves it signs and self-signed leaves, each with a fresh
// ECDSA P-256 key and a random serial (so a renewed certificate is told
// from the one it replaces), in PEM and written to files.
package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"time"
)

// CA is a certificate authority that signs leaves with Issue; its CertPEM
// makes a CA file.
type CA struct {
	*Issued
	Pool *x509.CertPool // the CA's certificate alone, for RootCAs or ClientCAs
}

// NewCA makes a CA with the subject CN=cn, valid from an hour ago for a
// year, so that it outlives any leaf it signs.
func NewCA(cn string) (*CA, error) {
	now := time.Now()
	iss, err := create(&x509.Certificate{
		Subject:   pkix.Name{CommonName: cn},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}, nil)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(iss.Cert)
	return &CA{Issued: iss, Pool: pool}, nil
}

// Leaf describes a certificate to issue; the zero value of each field suits
// a loopback server.
type Leaf struct {
	CN  string   // the subject's common name
	Org []string // the subject's organizations
	DNS []string
	IPs []net.IP
	// NotBefore starts the validity. Zero means an hour before now (or
	// before NotAfter, if earlier); a time in the future makes a
	// certificate that is not valid yet.
	NotBefore time.Time
	// NotAfter ends the validity. Zero means a day from now, or from
	// NotBefore if that is later; a time in the past makes an expired
	// certificate.
	NotAfter time.Time
	// Usage lists the extended key usages; nil means server authentication
	// only. A client certificate sets x509.ExtKeyUsageClientAuth.
	Usage []x509.ExtKeyUsage
}

// Issued is a certificate with its private key, also in PEM as TLS servers
// and clients load them.
type Issued struct {
	Cert    *x509.Certificate
	Key     *ecdsa.PrivateKey
	CertPEM []byte
	KeyPEM  []byte // PKCS #8 ("PRIVATE KEY")
}

// Issue signs a certificate described by l with the CA's key.
func (ca *CA) Issue(l Leaf) (*Issued, error) { return issue(l, ca.Issued) }

// SelfSigned makes a certificate described by l signed by its own key, for
// a server whose clients skip verification or trust it by itself.
func SelfSigned(l Leaf) (*Issued, error) { return issue(l, nil) }

// TLSCertificate returns the pair for a tls.Config, its Leaf set.
func (i *Issued) TLSCertificate() tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{i.Cert.Raw}, PrivateKey: i.Key, Leaf: i.Cert}
}

// WriteFiles writes the certificate to certFile and the key, readable by
// the owner only, to keyFile.
func (i *Issued) WriteFiles(certFile, keyFile string) error {
	return errors.Join(os.WriteFile(certFile, i.CertPEM, 0o644), os.WriteFile(keyFile, i.KeyPEM, 0o600))
}

// issue makes the certificate of l, signed by parent or, when parent is
// nil, by its own key.
func issue(l Leaf, parent *Issued) (*Issued, error) {
	start := time.Now()
	if l.NotAfter.IsZero() {
		l.NotAfter = start.Add(24 * time.Hour)
		if l.NotBefore.After(start) {
			l.NotAfter = l.NotBefore.Add(24 * time.Hour)
		}
	} else if l.NotAfter.Before(start) {
		start = l.NotAfter
	}
	if l.NotBefore.IsZero() {
		l.NotBefore = start.Add(-time.Hour)
	}
	if !l.NotAfter.After(l.NotBefore) {
		return nil, fmt.Errorf("issuing %q: validity ends (%s) before it starts (%s)", l.CN, l.NotAfter, l.NotBefore)
	}
	if l.Usage == nil {
		l.Usage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	return create(&x509.Certificate{
		Subject:  pkix.Name{CommonName: l.CN, Organization: l.Org},
		DNSNames: l.DNS, IPAddresses: l.IPs,
		NotBefore: l.NotBefore, NotAfter: l.NotAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: l.Usage,
	}, parent)
}

// create generates a key and the certificate of tmpl for it, signed by
// parent or, when parent is nil, by the new key. The serial is left to
// x509.CreateCertificate, which picks a random one.
func create(tmpl *x509.Certificate, parent *Issued) (*Issued, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating a key: %w", err)
	}
	signer, signerKey := tmpl, key
	if parent != nil {
		signer, signerKey = parent.Cert, parent.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		return nil, fmt.Errorf("creating the certificate of %q: %w", tmpl.Subject, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing the certificate of %q: %w", tmpl.Subject, err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encoding a key: %w", err)
	}
	return &Issued{
		Cert: cert, Key: key,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}),
	}, nil
}
