package edgetls

import (
	"crypto/tls"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/internal/testwait"
)

func TestClientAuth(t *testing.T) {
	serverCA := newCA(t, "server CA")
	clientCA := newCA(t, "client CA")
	strangerCA := newCA(t, "stranger CA")
	dir := t.TempDir()
	cf := writePair(t, dir, "site", serverCA.issue(t, leafSpec{dns: []string{"site.test"}}))
	caFile := dir + "/client-ca.pem"
	writeFile(t, caFile, clientCA.pem)
	alice := clientCA.issue(t, leafSpec{cn: "alice", client: true}).tlsCert(t)
	mallory := strangerCA.issue(t, leafSpec{cn: "mallory", client: true}).tlsCert(t)

	servers := map[string]*Server{}
	for _, mode := range []string{"none", "require", "verify_if_given"} {
		src := newSource(t, Options{Listener: mode, Certs: []CertFile{cf}, ClientAuth: mode, ClientCAFile: caFile}, Deps{})
		servers[mode] = startServer(t, "127.0.0.1:0", src, true, echoHandler)
	}

	tests := []struct {
		name        string
		mode        string
		proto       string
		cert        *tls.Certificate
		wantRefused bool
		wantSubject string
	}{
		{name: "require refuses no certificate", mode: "require", proto: "h2", wantRefused: true},
		{name: "require refuses an unknown CA", mode: "require", proto: "h2", cert: &mallory, wantRefused: true},
		{name: "require accepts alice", mode: "require", proto: "h2", cert: &alice, wantSubject: "CN=alice,O=Azimuth Test"},
		{name: "require accepts alice over h1", mode: "require", proto: "h1", cert: &alice, wantSubject: "CN=alice,O=Azimuth Test"},
		{name: "require refuses no certificate over h3", mode: "require", proto: "h3", wantRefused: true},
		{name: "require accepts alice over h3", mode: "require", proto: "h3", cert: &alice, wantSubject: "CN=alice,O=Azimuth Test"},
		{name: "verify_if_given accepts none", mode: "verify_if_given", proto: "h2", wantSubject: ""},
		{name: "verify_if_given accepts alice", mode: "verify_if_given", proto: "h2", cert: &alice, wantSubject: "CN=alice,O=Azimuth Test"},
		{name: "verify_if_given refuses an unknown CA", mode: "verify_if_given", proto: "h2", cert: &mallory, wantRefused: true},
		{name: "none ignores a certificate", mode: "none", proto: "h2", cert: &alice, wantSubject: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tc := &tls.Config{RootCAs: serverCA.pool, ServerName: "site.test"}
			if tt.cert != nil {
				// Always send it, even when the server's CA list does not
				// name its issuer, so the server must verify and refuse.
				cert := tt.cert
				tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
			}
			resp, err := clientFor(t, tt.proto, tc).Get("https://" + servers[tt.mode].Addr().String() + "/")
			if tt.wantRefused {
				if err == nil {
					resp.Body.Close()
					t.Fatalf("request accepted with status %d", resp.StatusCode)
				}
				return
			}
			if err != nil {
				t.Fatalf("request refused: %v", err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if want := resp.Proto + "|" + tt.wantSubject; string(body) != want {
				t.Errorf("handler saw %q, want %q", body, want)
			}
		})
	}
}

func TestClientSubjectWithoutTLS(t *testing.T) {
	r, _ := http.NewRequest(http.MethodGet, "http://x/", nil)
	if s, ok := ClientSubject(r); ok || s != "" {
		t.Errorf("plain request gave subject %q, %v", s, ok)
	}
	r.TLS = &tls.ConnectionState{}
	if s, ok := ClientSubject(r); ok || s != "" {
		t.Errorf("unverified request gave subject %q, %v", s, ok)
	}
}

// The client CA bundle is reloaded like the certificates: a CA added to
// it is trusted and a CA taken out is refused by the next handshakes, over
// TCP and QUIC, with no restart; a bundle cut short is refused and the
// previous one keeps verifying.
func TestClientCABundleReload(t *testing.T) {
	serverCA := newCA(t, "server CA")
	oldCA, newCAx := newCA(t, "old client CA"), newCA(t, "new client CA")
	dir := t.TempDir()
	cf := writePair(t, dir, "site", serverCA.issue(t, leafSpec{dns: []string{"site.test"}}))
	caFile := dir + "/client-ca.pem"
	writeFile(t, caFile, oldCA.pem)
	alice := oldCA.issue(t, leafSpec{cn: "alice", client: true}).tlsCert(t)
	bob := newCAx.issue(t, leafSpec{cn: "bob", client: true}).tlsCert(t)
	logs := &logRecorder{}
	src := newSource(t, Options{Listener: "mtls", Certs: []CertFile{cf}, ClientAuth: "require", ClientCAFile: caFile,
		ReloadDebounce: 20 * time.Millisecond}, Deps{Logger: slog.New(logs)})
	addr := startServer(t, "127.0.0.1:0", src, true, echoHandler).Addr().String()

	// accepted makes a new connection over proto with cert and reports
	// whether the request got through.
	accepted := func(proto string, cert tls.Certificate) bool {
		tc := &tls.Config{RootCAs: serverCA.pool, ServerName: "site.test",
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }}
		resp, err := clientFor(t, proto, tc).Get("https://" + addr + "/")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode == http.StatusOK && strings.HasSuffix(string(body), "|CN="+cert.Leaf.Subject.CommonName+",O=Azimuth Test")
	}
	want := func(stage string, wantAlice, wantBob bool) {
		t.Helper()
		for _, proto := range []string{"h2", "h3"} {
			if got := accepted(proto, alice); got != wantAlice {
				t.Errorf("%s over %s: alice (old CA) accepted %v, want %v", stage, proto, got, wantAlice)
			}
			if got := accepted(proto, bob); got != wantBob {
				t.Errorf("%s over %s: bob (new CA) accepted %v, want %v", stage, proto, got, wantBob)
			}
		}
	}
	want("at start", true, false)

	renameOver(t, caFile, append(append([]byte{}, oldCA.pem...), newCAx.pem...))
	testwait.Until(t, 5*time.Second, "the bundle with both CAs to verify", func() bool { return accepted("h2", bob) })
	want("with both CAs", true, true)

	// The new CA alone, but cut short: refused, both still trusted.
	renameOver(t, caFile, newCAx.pem[:len(newCAx.pem)/2])
	testwait.Until(t, 5*time.Second, "the cut bundle to be refused", func() bool {
		return logs.count(slog.LevelError, "client CA bundle reload refused") > 0
	})
	want("after a cut bundle", true, true)
	if err := src.Reload(); err == nil {
		t.Error("Reload of a cut bundle returned no error")
	}

	renameOver(t, caFile, newCAx.pem)
	testwait.Until(t, 5*time.Second, "the old CA to be refused", func() bool { return !accepted("h2", alice) })
	want("with the new CA alone", false, true)
	if n := logs.count(slog.LevelInfo, "client CA bundle reloaded"); n != 2 {
		t.Errorf("%d reloads logged, want 2", n)
	}
}

func TestLoadCABundle(t *testing.T) {
	a, b := newCA(t, "a"), newCA(t, "b")
	key := a.issue(t, leafSpec{dns: []string{"x.test"}}).keyPEM
	both := append(append([]byte("# two CAs\n"), a.pem...), b.pem...)
	tests := []struct {
		name    string
		data    []byte
		want    int
		wantErr string
	}{
		{name: "two certificates, a comment before", data: both, want: 2},
		{name: "the second cut short", data: both[:len(both)-40], wantErr: "not a whole PEM block"},
		{name: "a key among them", data: append(append([]byte{}, a.pem...), key...), wantErr: `PRIVATE KEY" PEM block`},
		{name: "no PEM at all", data: []byte("junk\n"), wantErr: "no PEM certificate"},
		{name: "empty", data: nil, wantErr: "no PEM certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := t.TempDir() + "/ca.pem"
			writeFile(t, path, tt.data)
			cas, err := loadCABundle(path)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), path) {
					t.Fatalf("error %v, want one naming %s and saying %q", err, path, tt.wantErr)
				}
				return
			}
			if err != nil || cas.n != tt.want {
				t.Fatalf("got %v certificates, %v; want %d", cas, err, tt.want)
			}
		})
	}
}
