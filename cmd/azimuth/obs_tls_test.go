package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"

	"github.com/azimuthproxy/azimuth/internal/pki"
	"github.com/azimuthproxy/azimuth/internal/testwait"
)

// obsCert writes a fresh self-signed certificate for 127.0.0.1 into dir
// and returns its files and a pool that trusts it.
func obsCert(t *testing.T, dir string) (certFile, keyFile string, roots *x509.CertPool) {
	t.Helper()
	iss, err := pki.SelfSigned(pki.Leaf{CN: "azimuth obs test", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, NotAfter: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := iss.WriteFiles(certFile, keyFile); err != nil {
		t.Fatal(err)
	}
	roots = x509.NewCertPool()
	roots.AddCert(iss.Cert)
	return certFile, keyFile, roots
}

// TestObsAccessLogProtocols sends one request each over HTTP/1.1, h2 and
// h3 to a TLS listener; the access log names each protocol and the TLS
// version, and requests_total counts them under the TLS listener.
func TestObsAccessLogProtocols(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, roots := obsCert(t, dir)
	b := obsBackend(t, "127.0.1.1", obsNamed("a"))
	access := filepath.Join(dir, "access.log")
	cfg := fmt.Sprintf("zone: a\nadmin: { address: 127.0.0.1:0 }\nshutdown: { grace: 2s, drain_delay: 100ms }\n"+
		"log: { access_log: { output: %s } }\n"+
		"listeners:\n  - name: https\n    address: 127.0.0.1:0\n"+
		"    tls: { certificates: [{ cert_file: %s, key_file: %s }], http3: true, min_version: \"1.3\" }\n"+
		"    routes: [{ pool: web }]\n"+
		"pools:\n  - name: web\n    backends: [{ address: %s, zone: a }]\n", access, certFile, keyFile, b.addr)
	path := filepath.Join(dir, "azimuth.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	_, admin := obsStart(t, path)
	addr := obsListener(t, admin, "", "https")

	tlsConf := &tls.Config{RootCAs: roots}
	h1 := &http.Transport{TLSClientConfig: tlsConf.Clone(), TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}
	h2 := &http.Transport{TLSClientConfig: tlsConf.Clone(), ForceAttemptHTTP2: true}
	h3 := &http3.Transport{TLSClientConfig: tlsConf.Clone()}
	defer h1.CloseIdleConnections()
	defer h2.CloseIdleConnections()
	defer h3.Close()
	order := []struct {
		proto string
		rt    http.RoundTripper
		major int
	}{{"h1", h1, 1}, {"h2", h2, 2}, {"h3", h3, 3}}
	for i, c := range order {
		client := http.Client{Transport: c.rt, Timeout: 10 * time.Second}
		resp, err := client.Get(fmt.Sprintf("https://%s/%s/%d", addr, c.proto, i))
		if err != nil {
			t.Fatalf("%s: %v", c.proto, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != "a" || resp.ProtoMajor != c.major {
			t.Fatalf("%s: %d %q over HTTP/%d", c.proto, resp.StatusCode, body, resp.ProtoMajor)
		}
	}

	var lines []map[string]any
	testwait.Until(t, 10*time.Second, "3 access log lines", func() bool { lines = obsReadLines(t, access); return len(lines) >= 3 })
	for i, c := range order {
		l := lines[i]
		if l["proto"] != c.proto || l["tls"] != "TLS 1.3" || l["listener"] != "https" || l["path"] != fmt.Sprintf("/%s/%d", c.proto, i) {
			t.Errorf("line %d: proto %v tls %v listener %v path %v; want %s over TLS 1.3", i, l["proto"], l["tls"], l["listener"], l["path"], c.proto)
		}
	}
	fams := obsScrape(t, admin, "")
	if got := obsValue(t, fams, "azimuth_requests_total", map[string]string{"listener": "https", "pool": "web", "code": "200"}); got != 3 {
		t.Errorf("requests_total{listener=https} = %v, want 3", got)
	}
	// The certificate ends an hour from its making.
	if got := obsValue(t, fams, "azimuth_tls_certificate_expiry_seconds", map[string]string{"listener": "https"}); got <= 3000 || got > 3600 {
		t.Errorf("tls_certificate_expiry_seconds = %v, want just under 3600", got)
	}
}
