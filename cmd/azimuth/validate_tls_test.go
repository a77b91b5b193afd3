package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/internal/pki"
)

// validateTLSYAML is a config with every TLS file a reload reads: a
// listener's pair and client CA, a pool's CA and client pair, each key on
// its own line so a problem's line tells which.
const validateTLSYAML = `zone: zone-a
admin: { address: 127.0.0.1:0 }
log: { level: info, access_log: { output: "off" } }
listeners:
  - name: https
    address: 127.0.0.1:0
    tls:
      certificates:
        - cert_file: a.pem
          key_file: a-key.pem
      client_auth: verify_if_given
      client_ca_file: client-ca.pem
    routes: [ { pool: web } ]
pools:
  - name: web
    backends: [ { address: %s, zone: zone-a } ]
    tls:
      ca_file: backend-ca.pem
      cert_file: proxy.pem
      key_file: proxy-key.pem
`

// validateTLSSetup is a directory holding validateTLSYAML and good files
// for every key, which a test case then spoils.
type validateTLSSetup struct {
	dir, path, yaml string
	ca              *pki.CA
	a               *pki.Issued // the listener's certificate, for a.test
}

func newValidateTLSSetup(t *testing.T, backend string) *validateTLSSetup {
	t.Helper()
	s := &validateTLSSetup{dir: t.TempDir(), ca: validateMust[*pki.CA](t)(pki.NewCA("edge CA"))}
	s.path = filepath.Join(s.dir, "azimuth.yaml")
	s.yaml = fmt.Sprintf(validateTLSYAML, backend)
	s.write(t, "azimuth.yaml", []byte(s.yaml))
	s.a = s.issue(t, pki.Leaf{CN: "a.test", DNS: []string{"a.test"}, NotAfter: time.Now().Add(90 * 24 * time.Hour)})
	s.writePair(t, "a", s.a)
	s.write(t, "client-ca.pem", s.ca.CertPEM)
	s.write(t, "backend-ca.pem", s.ca.CertPEM)
	s.writePair(t, "proxy", s.issue(t, pki.Leaf{CN: "azimuth", NotAfter: time.Now().Add(90 * 24 * time.Hour), Usage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}))
	return s
}

func (s *validateTLSSetup) issue(t *testing.T, l pki.Leaf) *pki.Issued {
	t.Helper()
	return validateMust[*pki.Issued](t)(s.ca.Issue(l))
}

// write replaces dir/name by renaming a new file over it, as deploy tools
// replace certificates.
func (s *validateTLSSetup) write(t *testing.T, name string, data []byte) {
	t.Helper()
	tmp := filepath.Join(s.dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(s.dir, name)); err != nil {
		t.Fatal(err)
	}
}

func (s *validateTLSSetup) writePair(t *testing.T, name string, iss *pki.Issued) {
	t.Helper()
	s.write(t, name+"-key.pem", iss.KeyPEM)
	s.write(t, name+".pem", iss.CertPEM)
}

// file is the absolute path of a file the config names, as messages show it.
func (s *validateTLSSetup) file(name string) string { return filepath.Join(s.dir, name) }

// problem is the line validate prints for key, written on the line of the
// config holding needle.
func (s *validateTLSSetup) problem(t *testing.T, needle, key, msg string) string {
	t.Helper()
	return fmt.Sprintf("%s:%d: %s: %s\n", s.path, lineOf(t, s.yaml, needle), key, msg)
}

func validateMust[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// validateDate is how messages show a certificate's NotBefore or NotAfter.
func validateDate(tm time.Time) string { return tm.UTC().Format(time.RFC3339) }

// azimuth validate reads every TLS file as a reload would and prints each
// problem as FILE:LINE: key: message: what a reload refuses (and a
// certificate out of its dates) exits 1; one that expires within 14 days
// is a warning and exits 0.
func TestValidateTLSFiles(t *testing.T) {
	const (
		certKey  = "listeners[0].tls.certificates[0].cert_file"
		keyKey   = "listeners[0].tls.certificates[0].key_file"
		certLine = "cert_file: a.pem"
		keyLine  = "key_file: a-key.pem"
	)
	day := 24 * time.Hour
	// badDER is a PEM block of the right type holding no certificate.
	badDER := []byte("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n")
	tests := []struct {
		name string
		// spoil breaks the good setup and returns the stderr validate must
		// print, exactly.
		spoil func(t *testing.T, s *validateTLSSetup) string
		code  int
	}{
		{"good config", func(t *testing.T, s *validateTLSSetup) string { return "" }, 0},
		{"garbage PEM certificate", func(t *testing.T, s *validateTLSSetup) string {
			s.write(t, "a.pem", []byte("not a certificate\n"))
			return s.problem(t, certLine, certKey, fmt.Sprintf("parsing pair %s + %s: tls: failed to find any PEM data in certificate input", s.file("a.pem"), s.file("a-key.pem")))
		}, 1},
		{"garbage key", func(t *testing.T, s *validateTLSSetup) string {
			s.write(t, "a-key.pem", []byte("not a key\n"))
			return s.problem(t, keyLine, keyKey, fmt.Sprintf("parsing pair %s + %s: tls: failed to find any PEM data in key input", s.file("a.pem"), s.file("a-key.pem")))
		}, 1},
		{"key of another certificate", func(t *testing.T, s *validateTLSSetup) string {
			s.write(t, "a-key.pem", s.issue(t, pki.Leaf{CN: "b.test", DNS: []string{"b.test"}}).KeyPEM)
			return s.problem(t, keyLine, keyKey, fmt.Sprintf("parsing pair %s + %s: tls: private key does not match public key", s.file("a.pem"), s.file("a-key.pem")))
		}, 1},
		{"empty CA bundle", func(t *testing.T, s *validateTLSSetup) string {
			s.write(t, "backend-ca.pem", nil)
			return s.problem(t, "ca_file: backend-ca.pem", "pools[0].tls.ca_file", "no PEM certificate found in "+s.file("backend-ca.pem"))
		}, 1},
		{"garbage client CA", func(t *testing.T, s *validateTLSSetup) string {
			s.write(t, "client-ca.pem", badDER)
			_, err := x509.ParseCertificate([]byte("not a certificate"))
			return s.problem(t, "client_ca_file", "listeners[0].tls.client_ca_file", fmt.Sprintf("%s: certificate 1: %v", s.file("client-ca.pem"), err))
		}, 1},
		{"backend client certificate and key do not match", func(t *testing.T, s *validateTLSSetup) string {
			s.write(t, "proxy-key.pem", s.issue(t, pki.Leaf{CN: "other"}).KeyPEM)
			return s.problem(t, "key_file: proxy-key.pem", "pools[0].tls.key_file", fmt.Sprintf("parsing pair %s + %s: tls: private key does not match public key", s.file("proxy.pem"), s.file("proxy-key.pem")))
		}, 1},
		{"every problem at once, in line order", func(t *testing.T, s *validateTLSSetup) string {
			s.write(t, "backend-ca.pem", nil)
			s.write(t, "a.pem", []byte("not a certificate\n"))
			return s.problem(t, certLine, certKey, fmt.Sprintf("parsing pair %s + %s: tls: failed to find any PEM data in certificate input", s.file("a.pem"), s.file("a-key.pem"))) +
				s.problem(t, "ca_file: backend-ca.pem", "pools[0].tls.ca_file", "no PEM certificate found in "+s.file("backend-ca.pem"))
		}, 1},
		{"expired certificate", func(t *testing.T, s *validateTLSSetup) string {
			iss := s.issue(t, pki.Leaf{CN: "a.test", DNS: []string{"a.test"}, NotAfter: time.Now().Add(-2 * day)})
			s.writePair(t, "a", iss)
			return s.problem(t, certLine, certKey, fmt.Sprintf("certificate for a.test expired 2 days ago (%s)", validateDate(iss.Cert.NotAfter)))
		}, 1},
		{"certificate not valid yet", func(t *testing.T, s *validateTLSSetup) string {
			iss := s.issue(t, pki.Leaf{CN: "a.test", DNS: []string{"a.test"}, NotBefore: time.Now().Add(2 * day), NotAfter: time.Now().Add(30 * day)})
			s.writePair(t, "a", iss)
			return s.problem(t, certLine, certKey, fmt.Sprintf("certificate for a.test is not valid until %s (in 2 days)", validateDate(iss.Cert.NotBefore)))
		}, 1},
		{"certificate expiring in 3 days", func(t *testing.T, s *validateTLSSetup) string {
			iss := s.issue(t, pki.Leaf{CN: "a.test", DNS: []string{"a.test"}, NotAfter: time.Now().Add(3 * day)})
			s.writePair(t, "a", iss)
			return s.problem(t, certLine, certKey, fmt.Sprintf("warning: certificate for a.test expires in 3 days (%s)", validateDate(iss.Cert.NotAfter)))
		}, 0},
		{"backend client certificate expiring in 3 days", func(t *testing.T, s *validateTLSSetup) string {
			iss := s.issue(t, pki.Leaf{CN: "azimuth", NotAfter: time.Now().Add(3 * day), Usage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
			s.writePair(t, "proxy", iss)
			return s.problem(t, "cert_file: proxy.pem", "pools[0].tls.cert_file", fmt.Sprintf("warning: certificate for azimuth expires in 3 days (%s)", validateDate(iss.Cert.NotAfter)))
		}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newValidateTLSSetup(t, "127.0.0.1:9001")
			wantStderr := tt.spoil(t, s)
			r := azimuth(t, "validate", s.path)
			wantStdout := ""
			if tt.code == 0 {
				wantStdout = s.path + ": ok\n"
			}
			if r.code != tt.code || r.stdout != wantStdout || r.stderr != wantStderr {
				t.Errorf("exit %d, stdout %q, stderr:\n%s\nwant exit %d, stdout %q, stderr:\n%s", r.code, r.stdout, r.stderr, tt.code, wantStdout, wantStderr)
			}
		})
	}
}

// What validate refuses, a running azimuth refuses too, in the same words:
// given the bad file it logs the problem and keeps serving the certificate
// it had. Both the certificate watcher (a file replaced under an unchanged
// config) and a config reload (the config names a new file) are covered.
func TestValidateAgreesWithReload(t *testing.T) {
	tests := []struct {
		name string
		// spoil breaks the running setup and returns the key validate
		// must blame.
		spoil func(t *testing.T, s *validateTLSSetup) string
		// logMsg is the log line that refuses it; its "error" holds
		// validate's message.
		logMsg string
	}{
		{"garbage certificate replaces a.pem", func(t *testing.T, s *validateTLSSetup) string {
			s.write(t, "a.pem", []byte("not a certificate\n"))
			return "listeners[0].tls.certificates[0].cert_file"
		}, "certificate reload refused, previous certificate keeps serving"},
		{"key of another certificate replaces a-key.pem", func(t *testing.T, s *validateTLSSetup) string {
			s.write(t, "a-key.pem", s.issue(t, pki.Leaf{CN: "b.test"}).KeyPEM)
			return "listeners[0].tls.certificates[0].key_file"
		}, "certificate reload refused, previous certificate keeps serving"},
		{"garbage client CA replaces client-ca.pem", func(t *testing.T, s *validateTLSSetup) string {
			s.write(t, "client-ca.pem", []byte("junk\n"))
			return "listeners[0].tls.client_ca_file"
		}, "client CA bundle reload refused, previous bundle keeps verifying"},
		{"config names a garbage certificate", func(t *testing.T, s *validateTLSSetup) string {
			s.write(t, "bad.pem", []byte("not a certificate\n"))
			s.yaml = strings.Replace(s.yaml, "cert_file: a.pem", "cert_file: bad.pem", 1)
			s.write(t, "azimuth.yaml", []byte(s.yaml))
			return "listeners[0].tls.certificates[0].cert_file"
		}, "config reload rejected"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			be := reloadStartBackend(t, "127.0.1.1", 0)
			s := newValidateTLSSetup(t, be.addr)
			// The backend speaks plain HTTP: this test is about the listener.
			s.yaml = s.yaml[:strings.LastIndex(s.yaml, "    tls:\n")]
			s.write(t, "azimuth.yaml", []byte(s.yaml))
			if r := azimuth(t, "validate", s.path); r.code != 0 {
				t.Fatalf("the good setup: validate exit %d, stderr:\n%s", r.code, r.stderr)
			}
			p, admin := reloadStart(t, s.path)
			url := "https://" + reloadListenerAddr(t, admin, "https") + "/"
			roots := x509.NewCertPool()
			roots.AddCert(s.ca.Cert)
			if got := validateServedSerial(t, roots, url); got.Cmp(s.a.Cert.SerialNumber) != 0 {
				t.Fatalf("serving serial %v, want %v", got, s.a.Cert.SerialNumber)
			}

			key := tt.spoil(t, s)
			l := p.waitLog(t, tt.logMsg, nil)
			logged, _ := l["error"].(string)

			r := azimuth(t, "validate", s.path)
			prefix := fmt.Sprintf("%s:%d: %s: ", s.path, lineOf(t, s.yaml, key[strings.LastIndex(key, ".")+1:]+":"), key)
			msg, ok := strings.CutPrefix(strings.TrimSuffix(r.stderr, "\n"), prefix)
			if r.code != 1 || !ok || strings.Contains(msg, "\n") {
				t.Fatalf("validate: exit %d, stderr:\n%s\nwant exit 1 and one problem starting %q", r.code, r.stderr, prefix)
			}
			if !strings.Contains(logged, msg) {
				t.Errorf("the reload logged %q; validate said %q: they must agree", logged, msg)
			}
			if got := validateServedSerial(t, roots, url); got.Cmp(s.a.Cert.SerialNumber) != 0 {
				t.Errorf("after the refused file, serving serial %v, want the previous %v", got, s.a.Cert.SerialNumber)
			}
		})
	}
}

// validateServedSerial makes one request over a new connection and returns
// the serial of the certificate the listener served for a.test.
func validateServedSerial(t *testing.T, roots *x509.CertPool, url string) *big.Int {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "a.test"}, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d", url, resp.StatusCode)
	}
	return resp.TLS.PeerCertificates[0].SerialNumber
}
