package main

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"

	"github.com/azimuthproxy/azimuth/internal/pki"
	"github.com/azimuthproxy/azimuth/internal/testwait"
)

// tlsproxyCA is a certificate authority generated for one test.
type tlsproxyCA struct {
	ca   *pki.CA
	pem  []byte
	pool *x509.CertPool
}

// tlsproxyNewCA makes an ECDSA P-256 CA.
func tlsproxyNewCA(t *testing.T, name string) *tlsproxyCA {
	t.Helper()
	ca, err := pki.NewCA(name)
	if err != nil {
		t.Fatal(err)
	}
	return &tlsproxyCA{ca: ca, pem: ca.CertPEM, pool: ca.Pool}
}

// tlsproxyLeaf is an issued certificate with its key, in PEM and parsed.
type tlsproxyLeaf struct {
	certPEM, keyPEM []byte
	serial          *big.Int
	pair            tls.Certificate
}

// issue signs a leaf for the DNS names (a server) or, with client set, a
// client certificate whose subject is subject (its CN and O).
func (ca *tlsproxyCA) issue(t *testing.T, subject pkix.Name, client bool, dns ...string) *tlsproxyLeaf {
	t.Helper()
	l := pki.Leaf{CN: subject.CommonName, Org: subject.Organization, DNS: dns}
	if client {
		l.Usage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	iss, err := ca.ca.Issue(l)
	if err != nil {
		t.Fatal(err)
	}
	return &tlsproxyLeaf{certPEM: iss.CertPEM, keyPEM: iss.KeyPEM, serial: iss.Cert.SerialNumber, pair: iss.TLSCertificate()}
}

// tlsproxyWriteLeaf writes a certificate for a.test signed by ca, and its
// key, as dir/a.pem and dir/a-key.pem.
func tlsproxyWriteLeaf(t *testing.T, ca *tlsproxyCA, dir string) {
	t.Helper()
	leaf := ca.issue(t, pkix.Name{CommonName: "a.test"}, false, "a.test")
	tlsproxyWriteFile(t, dir, "a.pem", leaf.certPEM)
	tlsproxyWriteFile(t, dir, "a-key.pem", leaf.keyPEM)
}

// tlsproxyWriteFile writes data as dir/name through a temporary file
// renamed over it, as deploy tools replace certificates.
func tlsproxyWriteFile(t *testing.T, dir, name string, data []byte) {
	t.Helper()
	tmp := filepath.Join(dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

// tlsproxyBackend is a backend speaking HTTPS with a certificate for
// backend.test.
func tlsproxyBackend(t *testing.T, ip string, leaf *tlsproxyLeaf) string {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", "tls:"+ln.Addr().String())
		_, _ = io.WriteString(w, "ok\n")
	}))
	srv.Listener.Close()
	srv.Listener = ln
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{leaf.pair}}
	// The pool checking against the wrong CA fails its handshakes on
	// purpose; the test asserts the 502, not the server's log line.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return ln.Addr().String()
}

// tlsproxyClient returns an HTTPS client over TCP that trusts ca, sends
// serverName as SNI, and speaks only HTTP/1.1 or only HTTP/2.
func tlsproxyClient(t *testing.T, ca *tlsproxyCA, serverName string, h2, keepAlive bool, certs ...tls.Certificate) *http.Client {
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: ca.pool, ServerName: serverName, Certificates: certs},
		DisableKeepAlives: !keepAlive,
		Protocols:         new(http.Protocols),
	}
	if h2 {
		tr.Protocols.SetHTTP2(true)
	} else {
		tr.Protocols.SetHTTP1(true)
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// tlsproxyGet sends a GET with extra headers and returns the response with
// its body read and closed.
func tlsproxyGet(client *http.Client, url string, header ...string) (*http.Response, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return nil, fmt.Errorf("reading body: %w", err)
	}
	return resp, nil
}

// tlsproxyFleet is a running azimuth with TLS listeners and the material
// the test needs to talk to it.
type tlsproxyFleet struct {
	dir                     string
	ca, clientCA            *tlsproxyCA
	alice                   *tlsproxyLeaf
	plainBackend            *reloadBackend
	https, mtls, web, redir string // bound listener addresses
	p                       *process
	admin                   string
}

// tlsproxyStart writes the certificates and the config and runs azimuth:
//   - https (127.0.0.2): certificates for a.test and b.test, HTTP/3 on;
//   - mtls (127.0.0.3): client_auth require, subject in X-Client-Subject;
//   - web (127.0.0.4): plain, /right/ to a TLS backend checked against
//     its CA, /wrong/ to the same backend checked against another CA;
//   - http (127.0.0.5): redirect_https to the https listener.
func tlsproxyStart(t *testing.T) *tlsproxyFleet {
	t.Helper()
	f := &tlsproxyFleet{dir: t.TempDir(), ca: tlsproxyNewCA(t, "edge CA"), clientCA: tlsproxyNewCA(t, "client CA")}
	backendCA, wrongCA := tlsproxyNewCA(t, "backend CA"), tlsproxyNewCA(t, "other CA")
	a := f.ca.issue(t, pkix.Name{CommonName: "a.test"}, false, "a.test")
	b := f.ca.issue(t, pkix.Name{CommonName: "b.test"}, false, "b.test")
	f.alice = f.clientCA.issue(t, pkix.Name{CommonName: "alice", Organization: []string{"Example"}}, true)
	for name, data := range map[string][]byte{
		"a.pem": a.certPEM, "a-key.pem": a.keyPEM, "b.pem": b.certPEM, "b-key.pem": b.keyPEM,
		"client-ca.pem": f.clientCA.pem, "backend-ca.pem": backendCA.pem, "wrong-ca.pem": wrongCA.pem,
	} {
		tlsproxyWriteFile(t, f.dir, name, data)
	}
	f.plainBackend = reloadStartBackend(t, "127.0.1.1", 0)
	tlsBackend := tlsproxyBackend(t, "127.0.1.2", backendCA.issue(t, pkix.Name{CommonName: "backend.test"}, false, "backend.test"))

	cfg := fmt.Sprintf(`zone: zone-a
admin: { address: 127.0.0.1:0 }
log: { level: info, access_log: { output: "off" } }
shutdown: { drain_delay: 50ms, grace: 2s }
listeners:
  - name: https
    address: 127.0.0.2:0
    tls:
      certificates:
        - { cert_file: a.pem, key_file: a-key.pem }
        - { cert_file: b.pem, key_file: b-key.pem }
      http3: true
      client_subject_header: X-Client-Subject
    routes:
      - pool: plain
  - name: mtls
    address: 127.0.0.3:0
    tls:
      certificates:
        - { cert_file: a.pem, key_file: a-key.pem }
      client_auth: require
      client_ca_file: client-ca.pem
      client_subject_header: X-Client-Subject
    routes:
      - pool: plain
  - name: web
    address: 127.0.0.4:0
    routes:
      - { path_prefix: /right/, pool: right }
      - { path_prefix: /wrong/, pool: wrong }
      - pool: plain
  - name: http
    address: 127.0.0.5:0
    redirect_https: true
    redirect_to: https
pools:
  - name: plain
    backends: [ { address: %s, zone: zone-a } ]
  - name: right
    tls: { ca_file: backend-ca.pem, server_name: backend.test }
    backends: [ { address: %s, zone: zone-a } ]
  - name: wrong
    tls: { ca_file: wrong-ca.pem, server_name: backend.test }
    backends: [ { address: %s, zone: zone-a } ]
`, f.plainBackend.addr, tlsBackend, tlsBackend)
	path := filepath.Join(f.dir, "azimuth.yaml")
	reloadWrite(t, path, cfg)
	f.p, f.admin = reloadStart(t, path)
	f.https = reloadListenerAddr(t, f.admin, "https")
	f.mtls = reloadListenerAddr(t, f.admin, "mtls")
	f.web = reloadListenerAddr(t, f.admin, "web")
	f.redir = reloadListenerAddr(t, f.admin, "http")
	return f
}

func TestTLSProxyEndToEnd(t *testing.T) {
	f := tlsproxyStart(t)
	_, httpsPort, _ := net.SplitHostPort(f.https)
	altSvc := fmt.Sprintf(`h3=":%s"`, httpsPort)

	t.Run("tcp protocols and SNI", func(t *testing.T) {
		tests := []struct {
			name      string
			sni       string
			h2        bool
			wantProto int
		}{
			{"HTTP/1.1 a.test", "a.test", false, 1},
			{"HTTP/2 a.test", "a.test", true, 2},
			{"HTTP/1.1 b.test", "b.test", false, 1},
			{"HTTP/2 b.test", "b.test", true, 2},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				before := f.plainBackend.hits.Load()
				resp, err := tlsproxyGet(tlsproxyClient(t, f.ca, tt.sni, tt.h2, false), "https://"+f.https+"/x", "X-Client-Subject", "CN=mallory")
				if err != nil {
					t.Fatal(err)
				}
				if resp.StatusCode != http.StatusOK || resp.ProtoMajor != tt.wantProto {
					t.Fatalf("status %d over %s, want 200 over HTTP/%d", resp.StatusCode, resp.Proto, tt.wantProto)
				}
				if resp.Header.Get("X-Backend") != f.plainBackend.addr || f.plainBackend.hits.Load() <= before {
					t.Errorf("the request did not reach the backend (X-Backend %q)", resp.Header.Get("X-Backend"))
				}
				if got := resp.TLS.PeerCertificates[0].Subject.CommonName; got != tt.sni {
					t.Errorf("SNI %s got the certificate of %s", tt.sni, got)
				}
				if got := resp.Header.Get("Alt-Svc"); !strings.HasPrefix(got, altSvc) {
					t.Errorf("Alt-Svc %q, want it to start with %s", got, altSvc)
				}
				if got := resp.Header.Get("X-Seen-Subject"); got != "" {
					t.Errorf("a client's own X-Client-Subject reached the backend: %q", got)
				}
			})
		}
	})

	t.Run("HTTP/3", func(t *testing.T) {
		tr := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: f.ca.pool, ServerName: "b.test"}}
		defer tr.Close()
		resp, err := tlsproxyGet(&http.Client{Transport: tr, Timeout: 10 * time.Second}, "https://"+f.https+"/h3")
		if err != nil {
			t.Fatalf("HTTP/3 request: %v", err)
		}
		if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 3 {
			t.Fatalf("status %d over %s, want 200 over HTTP/3", resp.StatusCode, resp.Proto)
		}
		if resp.Header.Get("X-Backend") != f.plainBackend.addr {
			t.Errorf("the HTTP/3 request did not reach the backend (X-Backend %q)", resp.Header.Get("X-Backend"))
		}
		if got := resp.TLS.PeerCertificates[0].Subject.CommonName; got != "b.test" {
			t.Errorf("SNI b.test over QUIC got the certificate of %s", got)
		}
	})

	t.Run("client certificates", func(t *testing.T) {
		url := "https://" + f.mtls + "/who"
		_, err := tlsproxyGet(tlsproxyClient(t, f.ca, "a.test", false, false), url)
		if err == nil {
			t.Fatal("a client without a certificate was served on a client_auth: require listener")
		}
		stranger := tlsproxyNewCA(t, "stranger CA").issue(t, pkix.Name{CommonName: "eve"}, true)
		if _, err := tlsproxyGet(tlsproxyClient(t, f.ca, "a.test", false, false, stranger.pair), url); err == nil {
			t.Fatal("a client certificate from an unknown CA was accepted")
		}
		for _, h2 := range []bool{false, true} {
			resp, err := tlsproxyGet(tlsproxyClient(t, f.ca, "a.test", h2, false, f.alice.pair), url, "X-Client-Subject", "CN=mallory")
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d with a valid client certificate", resp.StatusCode)
			}
			if got, want := resp.Header.Get("X-Seen-Subject"), "CN=alice,O=Example"; got != want {
				t.Errorf("backend saw subject %q over %s, want %q (the client's fake header stripped)", got, resp.Proto, want)
			}
		}
	})

	t.Run("backend TLS verification", func(t *testing.T) {
		client := &http.Client{Timeout: 10 * time.Second}
		tests := []struct {
			path string
			want int
		}{
			{"/right/", http.StatusOK},
			{"/wrong/", http.StatusBadGateway},
		}
		for _, tt := range tests {
			resp, err := tlsproxyGet(client, "http://"+f.web+tt.path)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.want {
				t.Errorf("%s: status %d, want %d", tt.path, resp.StatusCode, tt.want)
			}
			if tt.want == http.StatusOK && !strings.HasPrefix(resp.Header.Get("X-Backend"), "tls:") {
				t.Errorf("%s: not served by the TLS backend (X-Backend %q)", tt.path, resp.Header.Get("X-Backend"))
			}
		}
	})

	t.Run("redirect to https", func(t *testing.T) {
		client := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}}
		req, err := http.NewRequest(http.MethodGet, "http://"+f.redir+"/p?q=1", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = "a.test"
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if want := "https://a.test:" + httpsPort + "/p?q=1"; resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != want {
			t.Errorf("redirect: %d Location %q, want 308 %s", resp.StatusCode, resp.Header.Get("Location"), want)
		}
	})
}

// tlsproxyServedSerial returns the serial of the certificate a new TLS
// handshake with sni gets, over TCP or QUIC.
func tlsproxyServedSerial(t *testing.T, f *tlsproxyFleet, sni string, quic bool) *big.Int {
	t.Helper()
	var client *http.Client
	if quic {
		tr := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: f.ca.pool, ServerName: sni}}
		defer tr.Close()
		client = &http.Client{Transport: tr, Timeout: 10 * time.Second}
	} else {
		client = tlsproxyClient(t, f.ca, sni, false, false)
	}
	resp, err := tlsproxyGet(client, "https://"+f.https+"/serial")
	if err != nil {
		t.Fatalf("handshake with %s (quic %v): %v", sni, quic, err)
	}
	return resp.TLS.PeerCertificates[0].SerialNumber
}

// Certificate files renamed over mid-traffic: new handshakes get the new
// certificate over TCP and QUIC, and no request fails meanwhile.
func TestTLSProxyCertificateRotation(t *testing.T) {
	f := tlsproxyStart(t)
	bSerial := tlsproxyServedSerial(t, f, "b.test", false)
	const workers = 3
	// Without keep-alive every request is a new handshake.
	tr := reloadStartTraffic(t, tlsproxyClient(t, f.ca, "a.test", false, false), "https://"+f.https+"/", workers)
	testwait.Until(t, 5*time.Second, "traffic before the rotation", func() bool { return tr.ok.Load() > 20 })

	next := f.ca.issue(t, pkix.Name{CommonName: "a.test"}, false, "a.test")
	tlsproxyWriteFile(t, f.dir, "a-key.pem", next.keyPEM)
	tlsproxyWriteFile(t, f.dir, "a.pem", next.certPEM)
	for _, quic := range []bool{false, true} {
		testwait.Until(t, 10*time.Second, fmt.Sprintf("new handshakes (quic %v) get the new certificate", quic), func() bool {
			return tlsproxyServedSerial(t, f, "a.test", quic).Cmp(next.serial) == 0
		})
	}
	before := tr.ok.Load()
	testwait.Until(t, 5*time.Second, "traffic after the rotation", func() bool { return tr.ok.Load() > before+20 })
	tr.check(t, 40)
	if got := tlsproxyServedSerial(t, f, "b.test", false); got.Cmp(bSerial) != 0 {
		t.Errorf("b.test's certificate changed (serial %v, was %v) though its files did not", got, bSerial)
	}
	f.p.waitLog(t, "certificate reloaded", func(l map[string]any) bool { return l["serial"] == next.serial.String() })
}
