package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/instance"
	"github.com/azimuthproxy/azimuth/internal/acmetest"
	"github.com/azimuthproxy/azimuth/internal/consultest"
	"github.com/azimuthproxy/azimuth/internal/pki"
	"github.com/quic-go/quic-go/http3"
)

// acmeName is the name the ACME tests manage; the CA's DNS resolves every
// name to the address the test gives it.
const acmeName = "app.azimuth.test"

// acmePorts picks one port pair free on every address given, so that
// proxies on different loopback addresses share the ports the CA
// validates on, as a fleet shares 80 and 443.
func acmePorts(t *testing.T, hosts ...string) (httpPort, tlsPort int) {
	t.Helper()
	for range 50 {
		a, errA := acmetest.FreePort(hosts[0])
		b, errB := acmetest.FreePort(hosts[0])
		if errA != nil || errB != nil {
			t.Fatal(errA, errB)
		}
		ok := a != b
		for _, h := range hosts[1:] {
			for _, p := range []int{a, b} {
				l, err := net.Listen("tcp", net.JoinHostPort(h, fmt.Sprint(p)))
				if err != nil {
					ok = false
					continue
				}
				u, err := net.ListenPacket("udp", net.JoinHostPort(h, fmt.Sprint(p)))
				if err != nil {
					ok = false
				} else {
					u.Close()
				}
				l.Close()
			}
		}
		if ok {
			return a, b
		}
	}
	t.Fatal("no port pair free on every address")
	return 0, 0
}

// acmeConfig is a proxy with a plain listener and a TLS listener whose
// certificate for acmeName is managed; extraTLS is added to the tls block
// (indented 6 spaces), acmeExtra to the acme block (8 spaces), top to the
// top level.
func acmeConfig(host string, httpPort, tlsPort int, ca *acmetest.CA, backend, storage, extraTLS, acmeExtra, top string) string {
	return fmt.Sprintf(`admin: { address: 127.0.0.1:0 }
log: { level: info, access_log: { output: "off" } }
shutdown: { drain_delay: 0s, grace: 5s }
%slisteners:
  - name: web
    address: %s:%d
    redirect_https: true
    redirect_to: secure
  - name: secure
    address: %s:%d
    routes: [ { pool: app } ]
    tls:
      http3: true
%s      acme:
        names: [%s]
        directory: %s
        directory_ca_file: %s
        email: ops@azimuth.test
        storage: %s
        check_interval: 1s
%spools:
  - name: app
    backends: [ { address: %s, zone: zone-a } ]
`, top, host, httpPort, host, tlsPort, extraTLS, acmeName, ca.Directory, ca.DirectoryCAFile, storage, acmeExtra, backend)
}

// acmeRig is one proxy's ACME test setup: a CA that resolves every name
// to host and validates on the proxy's two ports, a backend, and the
// directory of the config file.
type acmeRig struct {
	host              string
	httpPort, tlsPort int
	ca                *acmetest.CA
	backend           *reloadBackend
	dir, path         string
}

// newACMERig starts the CA (certificates living validity; 0 is Pebble's
// 90 days) and the backend for a proxy on 127.0.6.1.
func newACMERig(t *testing.T, validity time.Duration) *acmeRig {
	t.Helper()
	r := &acmeRig{host: "127.0.6.1"}
	r.httpPort, r.tlsPort = acmePorts(t, r.host)
	r.ca = acmetest.Start(t, acmetest.Options{Address: r.host, HTTPPort: r.httpPort, TLSPort: r.tlsPort, Validity: validity})
	r.backend = reloadStartBackend(t, "127.0.1.1", 0)
	r.dir, r.path = reloadDir(t)
	return r
}

// config is acmeConfig for the rig's proxy.
func (r *acmeRig) config(extraTLS, acmeExtra, top string) string {
	return acmeConfig(r.host, r.httpPort, r.tlsPort, r.ca, r.backend.addr, filepath.Join(r.dir, "acme"), extraTLS, acmeExtra, top)
}

// tlsAddr is the proxy's TLS listener.
func (r *acmeRig) tlsAddr() string { return fmt.Sprintf("%s:%d", r.host, r.tlsPort) }

// acmeFileCert writes a certificate file for other.azimuth.test in dir and
// returns the tls block's certificates line for it and its CA.
func acmeFileCert(t *testing.T, dir string) (string, *pki.CA) {
	t.Helper()
	ca, err := pki.NewCA("file CA")
	if err != nil {
		t.Fatal(err)
	}
	other, err := ca.Issue(pki.Leaf{DNS: []string{"other.azimuth.test"}})
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "other.pem"), filepath.Join(dir, "other.key")
	if err := other.WriteFiles(certFile, keyFile); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("      certificates: [ { cert_file: %s, key_file: %s } ]\n", certFile, keyFile), ca
}

// acmeServed returns the leaf the proxy at addr serves for name, verified
// or not.
func acmeServed(t *testing.T, addr, name string) *x509.Certificate {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", addr,
		&tls.Config{ServerName: name, InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatalf("handshake for %s: %v", name, err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0]
}

// acmeHandshake dials addr for name and returns the leaf the proxy served;
// a leaf that does not verify against roots is an error.
func acmeHandshake(addr, name string, roots *x509.CertPool) (*x509.Certificate, error) {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", addr,
		&tls.Config{ServerName: name, RootCAs: roots, NextProtos: []string{"http/1.1"}})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0], nil
}

// acmeWaitServed waits until the proxy at addr serves a certificate for
// acmeName that verifies against the CA's roots, and returns it.
func acmeWaitServed(t *testing.T, addr string, roots *x509.CertPool, ca *acmetest.CA) *x509.Certificate {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		leaf, err := acmeHandshake(addr, acmeName, roots)
		if err == nil {
			return leaf
		}
		if time.Now().After(deadline) {
			t.Fatalf("no verified certificate for %s at %s within 60s: %v\nCA log:\n%s", acmeName, addr, err, ca.Log())
		}
		time.Sleep(100 * time.Millisecond) // polling interval
	}
}

// acmeGet sends a GET for acmeName through client and checks it reached the
// backend over proto.
func acmeGet(t *testing.T, client *http.Client, url, proto string) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("%s GET %s: %v", proto, url, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Proto != proto || !strings.HasPrefix(string(body), "ok from") {
		t.Fatalf("%s GET %s: %s over %s: %q", proto, url, resp.Status, resp.Proto, body)
	}
	if leaf := resp.TLS.PeerCertificates[0]; leaf.DNSNames[0] != acmeName {
		t.Fatalf("%s: served %v, want %s", proto, leaf.DNSNames, acmeName)
	}
}

// acmeClients are HTTP/1.1, HTTP/2 and HTTP/3 clients that ask for
// acmeName (SNI) and trust roots alone.
func acmeClients(t *testing.T, roots *x509.CertPool) map[string]*http.Client {
	t.Helper()
	cfg := &tls.Config{RootCAs: roots, ServerName: acmeName}
	h1 := &http.Transport{TLSClientConfig: cfg.Clone()}
	h2 := &http.Transport{TLSClientConfig: cfg.Clone(), ForceAttemptHTTP2: true}
	h3 := &http3.Transport{TLSClientConfig: cfg.Clone()}
	t.Cleanup(func() { h1.CloseIdleConnections(); h2.CloseIdleConnections(); h3.Close() })
	return map[string]*http.Client{
		"HTTP/1.1": {Transport: h1, Timeout: 10 * time.Second},
		"HTTP/2.0": {Transport: h2, Timeout: 10 * time.Second},
		"HTTP/3.0": {Transport: h3, Timeout: 10 * time.Second},
	}
}

// TestACMEObtainsAndServes: a proxy whose TLS listener manages a name
// obtains its certificate from a real ACME CA, answering the CA's
// challenge itself (HTTP-01 on its plain listener, or TLS-ALPN-01 on its
// TLS listener), and serves it over HTTP/1.1, HTTP/2 and HTTP/3, beside a
// certificate file for another name.
func TestACMEObtainsAndServes(t *testing.T) {
	// The message the proxy logs when it answers each kind of challenge.
	answered := map[string]string{"http-01": "served key authentication", "tls-alpn-01": "served key authentication certificate"}
	for _, challenge := range []string{"http-01", "tls-alpn-01"} {
		t.Run(challenge, func(t *testing.T) {
			r := newACMERig(t, 0)
			ca, path := r.ca, r.path

			files, fileCA := acmeFileCert(t, r.dir)
			reloadWrite(t, path, r.config(files, fmt.Sprintf("        challenges: [%s]\n", challenge), ""))
			p, admin := reloadStart(t, path)

			tlsAddr := r.tlsAddr()
			roots := ca.Roots(t)
			leaf := acmeWaitServed(t, tlsAddr, roots, ca)
			if got := leaf.DNSNames; len(got) != 1 || got[0] != acmeName {
				t.Fatalf("managed certificate names %v, want [%s]", got, acmeName)
			}
			for proto, client := range acmeClients(t, roots) {
				acmeGet(t, client, "https://"+tlsAddr+"/", proto)
			}
			// The plain listener that answered HTTP-01 redirects the rest.
			noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			resp, err := noRedirect.Get(fmt.Sprintf("http://%s:%d/.well-known/acme-challenge/unknown", r.host, r.httpPort))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if loc := resp.Header.Get("Location"); resp.StatusCode/100 != 3 || !strings.Contains(loc, fmt.Sprint(r.tlsPort)) {
				t.Errorf("plain listener, a token nobody presented: %s to %q, want the redirect", resp.Status, loc)
			}
			// The file certificate still serves its own name.
			if got, err := acmeHandshake(tlsAddr, "other.azimuth.test", fileCA.Pool); err != nil || got.DNSNames[0] != "other.azimuth.test" {
				t.Fatalf("file certificate beside the managed one: %v, %v", got, err)
			}
			// The proxy answered the challenge type it offered.
			p.waitLog(t, answered[challenge], func(m map[string]any) bool { return m["challenge"] == challenge })
			p.waitLog(t, "acme certificate obtained", func(m map[string]any) bool { return m["name"] == acmeName })
			if n := ca.Issued(); n != 1 {
				t.Errorf("the CA issued %d certificates, want 1", n)
			}
			ok := fmt.Sprintf(`azimuth_acme_orders_total{kind="obtain",listener="secure",name="%s",result="ok"}`, acmeName)
			if got := reloadMetric(t, admin, ok); got != 1 {
				t.Errorf("%s = %v, want 1", ok, got)
			}
			var managed []instance.ACMEName
			for _, l := range reloadGetStatus(t, admin).ACME {
				if l.Listener == "secure" {
					managed = l.Names
				}
			}
			if len(managed) != 1 || managed[0].Name != acmeName || managed[0].NotAfter == nil || !managed[0].NotAfter.Equal(leaf.NotAfter) {
				t.Errorf("/status acme of the listener %+v, want %s until %s", managed, acmeName, leaf.NotAfter)
			}
			exp := fmt.Sprintf(`azimuth_acme_certificate_expiry_seconds{listener="secure",name="%s"}`, acmeName)
			if got := reloadMetric(t, admin, exp); got < 80*24*3600 {
				t.Errorf("%s = %v, want about 90 days", exp, got)
			}
		})
	}
}

// TestACMERenewsWithoutADroppedRequest: certificates that live 30 s are
// renewed in the background while clients make new connections without
// pause; every request succeeds and the served certificate changes.
func TestACMERenewsWithoutADroppedRequest(t *testing.T) {
	r := newACMERig(t, 30*time.Second)
	ca := r.ca
	reloadWrite(t, r.path, r.config("", "", ""))
	_, admin := reloadStart(t, r.path)

	tlsAddr := r.tlsAddr()
	roots := ca.Roots(t)
	first := acmeWaitServed(t, tlsAddr, roots, ca)

	// Four workers, each request on a new connection, so every request
	// is a handshake with the certificate in force.
	tr := &http.Transport{
		DisableKeepAlives: true,
		TLSClientConfig:   &tls.Config{RootCAs: roots, ServerName: acmeName},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, tlsAddr)
		},
	}
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	var (
		okCount atomic.Int64
		mu      sync.Mutex
		fails   []string
		serials = map[string]bool{}
		wg      sync.WaitGroup
	)
	for range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				resp, err := client.Get("https://" + acmeName + "/")
				if err != nil {
					if ctx.Err() == nil {
						mu.Lock()
						fails = append(fails, err.Error())
						mu.Unlock()
					}
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				mu.Lock()
				if resp.StatusCode != http.StatusOK {
					fails = append(fails, resp.Status)
				} else {
					serials[resp.TLS.PeerCertificates[0].SerialNumber.String()] = true
				}
				if len(serials) >= 3 {
					cancel() // renewed twice: enough seen
				}
				mu.Unlock()
				okCount.Add(1)
			}
		})
	}
	wg.Wait()
	if len(fails) > 0 {
		t.Errorf("%d of %d requests failed during renewals; first: %v", len(fails), okCount.Load()+int64(len(fails)), fails[:min(5, len(fails))])
	}
	if len(serials) < 2 {
		t.Fatalf("the served certificate never changed (serial %s) in 40 s of 30 s certificates\nCA log:\n%s", first.SerialNumber, ca.Log())
	}
	renew := fmt.Sprintf(`azimuth_acme_orders_total{kind="renew",listener="secure",name="%s",result="ok"}`, acmeName)
	if got := reloadMetric(t, admin, renew); got < 1 {
		t.Errorf("%s = %v, want at least 1", renew, got)
	}
	t.Logf("%d requests over new connections, %d certificates served, none failed", okCount.Load(), len(serials))
}

// TestACMEFleetSharesOneOrder: two proxies of a region share a real Consul
// agent. Started together, they place one order between them; the CA's
// DNS sends its validation to the second proxy whichever one ordered (a
// DNS-failover pair has one address in DNS), and both serve the one
// certificate.
func TestACMEFleetSharesOneOrder(t *testing.T) {
	agent := consultest.Start(t)
	hostA, hostB := "127.0.6.1", "127.0.6.2"
	httpPort, tlsPort := acmePorts(t, hostA, hostB)
	ca := acmetest.Start(t, acmetest.Options{Address: hostB, HTTPPort: httpPort, TLSPort: tlsPort})
	backend := reloadStartBackend(t, "127.0.1.1", 0)
	top := fmt.Sprintf("consul: { address: %s }\n", agent.Addr())

	var (
		admins, paths []string
		procs         []*process
	)
	for _, host := range []string{hostA, hostB} {
		dir, path := reloadDir(t)
		reloadWrite(t, path, acmeConfig(host, httpPort, tlsPort, ca, backend.addr, filepath.Join(dir, "acme"), "", "", top))
		p, admin := reloadStart(t, path)
		admins, paths, procs = append(admins, admin), append(paths, path), append(procs, p)
	}
	roots := ca.Roots(t)
	a := acmeWaitServed(t, fmt.Sprintf("%s:%d", hostA, tlsPort), roots, ca)
	b := acmeWaitServed(t, fmt.Sprintf("%s:%d", hostB, tlsPort), roots, ca)
	if a.SerialNumber.Cmp(b.SerialNumber) != 0 {
		t.Errorf("the proxies serve different certificates: %s and %s", a.SerialNumber, b.SerialNumber)
	}
	if n := ca.Issued(); n != 1 {
		t.Errorf("the CA issued %d certificates to the pair, want 1\nCA log:\n%s", n, ca.Log())
	}
	ok := fmt.Sprintf(`azimuth_acme_orders_total{kind="obtain",listener="secure",name="%s",result="ok"}`, acmeName)
	var orders float64
	for _, admin := range admins {
		orders += metricOrZero(t, admin, ok)
	}
	if orders != 1 {
		t.Errorf("the pair counted %v orders, want 1", orders)
	}
	// The CA validated at the second proxy; when the first one ordered,
	// the second answered from what the first stored in Consul.
	served := procs[1].waitLogPrefix(t, "served key authentication")
	t.Logf("ordered by proxy %s; the challenge answered by the second proxy, distributed: %v",
		map[bool]string{true: "A", false: "B"}[metricOrZero(t, admins[0], ok) == 1], served["distributed"])
	keys, _, err := agent.Client().KV().Keys("azimuth/acme/certificates/", "", nil)
	if err != nil || len(keys) == 0 {
		t.Errorf("no certificate under azimuth/acme/ in Consul: %v %v", keys, err)
	}

	// Consul goes away and the second proxy restarts: it serves the
	// certificate from its local copy from the start.
	agent.Stop()
	procs[1].cmd.Process.Kill()
	<-procs[1].done
	reloadStart(t, paths[1])
	if got, err := acmeHandshake(fmt.Sprintf("%s:%d", hostB, tlsPort), acmeName, roots); err != nil || got.SerialNumber.Cmp(a.SerialNumber) != 0 {
		t.Errorf("restarted without Consul: %v, %v; want the certificate it had", got, err)
	}
}

// metricOrZero is reloadMetric for a series that may not exist yet.
func metricOrZero(t *testing.T, admin, series string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(b), series+" ") {
		return 0
	}
	return reloadMetric(t, admin, series)
}

// waitLogPrefix waits for a log line whose msg starts with prefix.
func (p *process) waitLogPrefix(t *testing.T, prefix string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		p.mu.Lock()
		for _, l := range p.logs {
			if msg, _ := l["msg"].(string); strings.HasPrefix(msg, prefix) {
				p.mu.Unlock()
				return l
			}
		}
		p.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("no log starting %q", prefix)
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
}

// TestACMEReloadAndFailure: the acme block is validated and reloaded like
// the rest of the config. A bad block is refused, naming its line, and the
// running certificates stay; with the CA unreachable, a reload that adds a
// name keeps serving the certificate already obtained (from storage, from
// the first handshake after the reload), the file certificate serves the
// rest, and the failed order is counted; a reload to another CA, which
// cannot be reached, keeps serving the certificate of the one before.
func TestACMEReloadAndFailure(t *testing.T) {
	r := newACMERig(t, 0)
	ca, path := r.ca, r.path
	files, fileCA := acmeFileCert(t, r.dir)
	config := func(acmeExtra string) string { return r.config(files, acmeExtra, "") }
	reloadWrite(t, path, config(""))
	p, admin := reloadStart(t, path)
	tlsAddr := r.tlsAddr()
	roots := ca.Roots(t)
	first := acmeWaitServed(t, tlsAddr, roots, ca)

	// Handshakes without pause for the rest of the test: none may fail.
	ctx, cancel := context.WithCancel(context.Background())
	var (
		hs     atomic.Int64
		hsErrs []string
		mu     sync.Mutex
		wg     sync.WaitGroup
	)
	wg.Go(func() {
		for ctx.Err() == nil {
			leaf, err := acmeHandshake(tlsAddr, acmeName, roots)
			hs.Add(1)
			if err == nil && leaf.SerialNumber.Cmp(first.SerialNumber) != 0 {
				err = fmt.Errorf("serial %s, want %s", leaf.SerialNumber, first.SerialNumber)
			}
			if err != nil {
				mu.Lock()
				hsErrs = append(hsErrs, err.Error())
				mu.Unlock()
			}
		}
	})

	// A wildcard is refused where it is written; the running config stays.
	bad := strings.Replace(config(""), "names: ["+acmeName+"]", "names: [\"*.azimuth.test\"]", 1)
	reloadWrite(t, path, bad)
	l := p.waitLog(t, "config reload rejected", func(m map[string]any) bool { return m["key"] == "listeners[1].tls.acme.names[0]" })
	if at, _ := l["at"].(string); !strings.HasPrefix(at, fmt.Sprintf("%s:%d: ", path, lineOf(t, bad, "*.azimuth.test"))) {
		t.Errorf("refused acme block logged at %q, want its line %d", at, lineOf(t, bad, "*.azimuth.test"))
	}

	// The CA goes away; a reload adds a name it cannot order.
	ca.Stop()
	added := strings.Replace(config(""), "names: ["+acmeName+"]", "names: ["+acmeName+", new.azimuth.test]", 1)
	reloadWrite(t, path, added)
	p.waitLog(t, "config applied", func(m map[string]any) bool { return m["source"] == path && reloadMetric(t, admin, reloadOK) >= 2 })
	failed := `azimuth_acme_orders_total{kind="obtain",listener="secure",name="new.azimuth.test",result="failed"}`
	deadline := time.Now().Add(30 * time.Second)
	for metricOrZero(t, admin, failed) < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("no failed order counted for new.azimuth.test in 30s")
		}
		time.Sleep(100 * time.Millisecond) // polling interval
	}
	// The file certificate serves its name, and the default for the name
	// not obtained; requests are served.
	if got, err := acmeHandshake(tlsAddr, "other.azimuth.test", fileCA.Pool); err != nil || got.DNSNames[0] != "other.azimuth.test" {
		t.Errorf("file certificate: %v, %v", got, err)
	}
	if got := acmeServed(t, tlsAddr, "new.azimuth.test"); got.DNSNames[0] != "other.azimuth.test" {
		t.Errorf("a name not obtained yet got %v, want the file certificate", got.DNSNames)
	}

	// A reload moves to another CA, which cannot be reached either: the
	// certificate of the CA before keeps serving the name.
	moved := strings.Replace(added, ca.Directory, "https://127.0.0.1:9/directory", 1)
	reloadWrite(t, path, moved)
	p.waitLog(t, "config applied", func(m map[string]any) bool { return reloadMetric(t, admin, reloadOK) >= 3 })
	if got := acmeServed(t, tlsAddr, acmeName); got.SerialNumber.Cmp(first.SerialNumber) != 0 {
		t.Errorf("after moving to an unreachable CA, %s got serial %s, want %s", acmeName, got.SerialNumber, first.SerialNumber)
	}
	for proto, client := range acmeClients(t, roots) {
		if proto != "HTTP/3.0" {
			acmeGet(t, client, "https://"+tlsAddr+"/", proto)
		}
	}
	cancel()
	wg.Wait()
	if len(hsErrs) > 0 {
		t.Errorf("%d of %d handshakes for %s failed across the reloads; first: %v", len(hsErrs), hs.Load(), acmeName, hsErrs[:min(5, len(hsErrs))])
	}
	t.Logf("%d handshakes for %s across a refused and an applied reload, the CA down: %d failed", hs.Load(), acmeName, len(hsErrs))
}

// TestACMEStartsWhileConsulIsDown: a proxy started while the Consul agent
// that keeps its certificates cannot be reached, with no local copy yet,
// serves its file certificate, keeps trying to read Consul, and orders
// the certificate once the agent answers.
func TestACMEStartsWhileConsulIsDown(t *testing.T) {
	agent := consultest.Start(t)
	r := newACMERig(t, 0)
	ca := r.ca
	files, _ := acmeFileCert(t, r.dir)
	reloadWrite(t, r.path, r.config(files, "", fmt.Sprintf("consul: { address: %s }\n", agent.Addr())))

	agent.Stop()
	p, _ := reloadStart(t, r.path)
	tlsAddr := r.tlsAddr()
	if got := acmeServed(t, tlsAddr, acmeName); got.DNSNames[0] != "other.azimuth.test" {
		t.Fatalf("before any certificate: served %v, want the file's", got.DNSNames)
	}
	p.waitLog(t, "acme storage not readable; trying again", nil)
	agent.Restart()
	leaf := acmeWaitServed(t, tlsAddr, ca.Roots(t), ca)
	if leaf.DNSNames[0] != acmeName || ca.Issued() != 1 {
		t.Fatalf("after the agent came back: served %v, %d issued", leaf.DNSNames, ca.Issued())
	}
}
