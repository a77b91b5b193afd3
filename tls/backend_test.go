package edgetls

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestBackendTLSConfig(t *testing.T) {
	rightCA := newCA(t, "backend CA")
	wrongCA := newCA(t, "wrong CA")
	proxyCA := newCA(t, "proxy client CA")
	dir := t.TempDir()
	writeFile(t, dir+"/right.pem", rightCA.pem)
	writeFile(t, dir+"/wrong.pem", wrongCA.pem)
	client := writePair(t, dir, "proxy", proxyCA.issue(t, leafSpec{cn: "azimuth", client: true}))
	serverCert := rightCA.issue(t, leafSpec{dns: []string{"backend.internal"}}).tlsCert(t)

	newBackend := func(requireClient bool) *httptest.Server {
		s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte("ok"))
		}))
		s.TLS = &tls.Config{Certificates: []tls.Certificate{serverCert}}
		s.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected here
		if requireClient {
			s.TLS.ClientAuth = tls.RequireAndVerifyClientCert
			s.TLS.ClientCAs = proxyCA.pool
		}
		s.StartTLS()
		t.Cleanup(s.Close)
		return s
	}
	plain, mtls := newBackend(false), newBackend(true)

	tests := []struct {
		name    string
		backend *httptest.Server
		opts    BackendOptions
		wantErr func(error) bool
	}{
		{name: "right CA", backend: plain, opts: BackendOptions{CAFile: dir + "/right.pem", ServerName: "backend.internal"}},
		{name: "wrong CA", backend: plain, opts: BackendOptions{CAFile: dir + "/wrong.pem", ServerName: "backend.internal"},
			wantErr: func(err error) bool { var e x509.UnknownAuthorityError; return errors.As(err, &e) }},
		{name: "system roots do not know the test CA", backend: plain, opts: BackendOptions{ServerName: "backend.internal"},
			wantErr: func(err error) bool { var e x509.UnknownAuthorityError; return errors.As(err, &e) }},
		{name: "wrong server name", backend: plain, opts: BackendOptions{CAFile: dir + "/right.pem", ServerName: "other.internal"},
			wantErr: func(err error) bool { var e x509.HostnameError; return errors.As(err, &e) }},
		{name: "client certificate presented", backend: mtls,
			opts: BackendOptions{CAFile: dir + "/right.pem", ServerName: "backend.internal", CertFile: client.CertFile, KeyFile: client.KeyFile}},
		{name: "client certificate missing", backend: mtls, opts: BackendOptions{CAFile: dir + "/right.pem", ServerName: "backend.internal"},
			wantErr: func(err error) bool { return err != nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := BackendTLSConfig(tt.opts)
			if err != nil {
				t.Fatalf("BackendTLSConfig: %v", err)
			}
			if cfg.InsecureSkipVerify {
				t.Fatal("verification is off")
			}
			tr := &http.Transport{TLSClientConfig: cfg}
			defer tr.CloseIdleConnections()
			resp, err := (&http.Client{Transport: tr}).Get(tt.backend.URL)
			if err == nil {
				resp.Body.Close()
			}
			switch {
			case tt.wantErr == nil && err != nil:
				t.Fatalf("request failed: %v", err)
			case tt.wantErr != nil && err == nil:
				t.Fatal("request succeeded")
			case tt.wantErr != nil && !tt.wantErr(err):
				t.Fatalf("unexpected error: %v", err)
			}
		})
	}
}

func TestBackendTLSConfigErrors(t *testing.T) {
	ca := newCA(t, "CA")
	dir := t.TempDir()
	pair := writePair(t, dir, "c", ca.issue(t, leafSpec{cn: "c", client: true}))
	tests := []struct {
		name string
		opts BackendOptions
		want string
	}{
		{name: "missing CA file", opts: BackendOptions{CAFile: dir + "/none.pem"}, want: "backend ca_file"},
		{name: "cert without key", opts: BackendOptions{CertFile: pair.CertFile}, want: "must be set together"},
		{name: "key without cert", opts: BackendOptions{KeyFile: pair.KeyFile}, want: "must be set together"},
		{name: "mismatched pair", opts: BackendOptions{CertFile: pair.CertFile, KeyFile: writePair(t, dir, "d", ca.issue(t, leafSpec{cn: "d"})).KeyFile}, want: "does not match"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := BackendTLSConfig(tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}
