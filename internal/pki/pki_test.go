package pki

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// must returns what a constructor made, failing the test on its error.
func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// A leaf verifies against its CA's pool for its names and its usage only,
// and not against another CA.
func TestIssueVerifies(t *testing.T) {
	ca, other := must[*CA](t)(NewCA("test CA")), must[*CA](t)(NewCA("other CA"))
	clientAuth, serverAuth := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	server := must[*Issued](t)(ca.Issue(Leaf{CN: "site", DNS: []string{"site.test"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}))
	client := must[*Issued](t)(ca.Issue(Leaf{CN: "alice", Org: []string{"Example"}, Usage: clientAuth}))
	tests := []struct {
		name  string
		leaf  *Issued
		roots *x509.CertPool
		host  string
		usage []x509.ExtKeyUsage
		ok    bool
	}{
		{"server by DNS name", server, ca.Pool, "site.test", serverAuth, true},
		{"server by IP", server, ca.Pool, "127.0.0.1", serverAuth, true},
		{"server as a client", server, ca.Pool, "", clientAuth, false},
		{"server against another CA", server, other.Pool, "site.test", serverAuth, false},
		{"client", client, ca.Pool, "", clientAuth, true},
		{"client as a server", client, ca.Pool, "", serverAuth, false},
	}
	for _, tt := range tests {
		_, err := tt.leaf.Cert.Verify(x509.VerifyOptions{Roots: tt.roots, DNSName: tt.host, KeyUsages: tt.usage})
		if (err == nil) != tt.ok {
			t.Errorf("%s: Verify = %v, want ok %v", tt.name, err, tt.ok)
		}
	}
	if got, want := client.Cert.Subject.String(), "CN=alice,O=Example"; got != want {
		t.Errorf("subject %q, want %q", got, want)
	}
	if server.Cert.SerialNumber.Cmp(client.Cert.SerialNumber) == 0 {
		t.Errorf("two leaves share the serial %v", server.Cert.SerialNumber)
	}
}

// A self-signed leaf pairs with its key, in PEM, as a tls.Certificate and
// written to files (the key the owner's alone), and keeps the NotAfter asked
// for: one in the past makes it expired.
func TestSelfSigned(t *testing.T) {
	notAfter := time.Now().Add(-48 * time.Hour).Truncate(time.Second)
	iss := must[*Issued](t)(SelfSigned(Leaf{CN: "expired", DNS: []string{"localhost"}, NotAfter: notAfter}))
	pair := must[tls.Certificate](t)(tls.X509KeyPair(iss.CertPEM, iss.KeyPEM)) // the key matches
	if tc := iss.TLSCertificate(); !pair.Leaf.Equal(iss.Cert) || !bytes.Equal(tc.Certificate[0], pair.Certificate[0]) || !iss.Key.Equal(pair.PrivateKey) {
		t.Error("the PEM pair, the TLSCertificate and the Issued differ")
	}
	certFile, keyFile := filepath.Join(t.TempDir(), "cert.pem"), filepath.Join(t.TempDir(), "key.pem")
	if err := iss.WriteFiles(certFile, keyFile); err != nil {
		t.Fatal(err)
	}
	if pair := must[tls.Certificate](t)(tls.LoadX509KeyPair(certFile, keyFile)); !pair.Leaf.Equal(iss.Cert) {
		t.Error("the written files hold another leaf")
	}
	if fi := must[os.FileInfo](t)(os.Stat(keyFile)); fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	roots := x509.NewCertPool()
	roots.AddCert(iss.Cert)
	opts := x509.VerifyOptions{Roots: roots, DNSName: "localhost", CurrentTime: notAfter.Add(-time.Minute)}
	if _, err := iss.Cert.Verify(opts); err != nil || !iss.Cert.NotAfter.Equal(notAfter) {
		t.Errorf("Verify within its validity: %v; NotAfter %v, want %v", err, iss.Cert.NotAfter, notAfter)
	}
	opts.CurrentTime = time.Now()
	if _, err := iss.Cert.Verify(opts); err == nil {
		t.Error("an expired certificate verified")
	}
}

// A leaf's validity is the one asked for, NotBefore and NotAfter each
// defaulting around the other and now; one that would end before it starts
// is refused rather than issued.
func TestValidityPeriod(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	day := 24 * time.Hour
	tests := []struct {
		name                string
		notBefore, notAfter time.Time
		// wantFrom and wantTo are the expected validity; a zero one is
		// checked to be within a minute of its default instead.
		wantFrom, wantTo time.Time
		validNow         bool
		wantErr          bool
	}{
		{name: "defaults", wantFrom: now.Add(-time.Hour), wantTo: now.Add(day), validNow: true},
		{name: "expired", notAfter: now.Add(-2 * day), wantFrom: now.Add(-2*day - time.Hour), wantTo: now.Add(-2 * day)},
		{name: "not valid yet", notBefore: now.Add(2 * day), wantFrom: now.Add(2 * day), wantTo: now.Add(3 * day)},
		{name: "both set", notBefore: now.Add(-10 * day), notAfter: now.Add(3 * day), wantFrom: now.Add(-10 * day), wantTo: now.Add(3 * day), validNow: true},
		{name: "ends before it starts", notBefore: now.Add(2 * day), notAfter: now.Add(day), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			iss, err := SelfSigned(Leaf{CN: "v.test", DNS: []string{"v.test"}, NotBefore: tt.notBefore, NotAfter: tt.notAfter})
			if tt.wantErr {
				if err == nil {
					t.Fatalf("issued a certificate valid from %v to %v", iss.Cert.NotBefore, iss.Cert.NotAfter)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			near := func(got, want time.Time) bool { d := got.Sub(want); return d > -time.Minute && d < time.Minute }
			if c := iss.Cert; !near(c.NotBefore, tt.wantFrom) || !near(c.NotAfter, tt.wantTo) {
				t.Errorf("valid from %v to %v, want %v to %v", c.NotBefore, c.NotAfter, tt.wantFrom, tt.wantTo)
			}
			if !tt.notBefore.IsZero() && !iss.Cert.NotBefore.Equal(tt.notBefore) {
				t.Errorf("NotBefore %v, want exactly %v", iss.Cert.NotBefore, tt.notBefore)
			}
			roots := x509.NewCertPool()
			roots.AddCert(iss.Cert)
			_, err = iss.Cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: "v.test"})
			if (err == nil) != tt.validNow {
				t.Errorf("Verify now: %v, want valid %v", err, tt.validNow)
			}
		})
	}
}
