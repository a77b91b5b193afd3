package edgetls

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/internal/testwait"
	"github.com/quic-go/quic-go/http3"
)

func TestServerProtocols(t *testing.T) {
	ca := newCA(t, "test CA")
	dir := t.TempDir()
	cf := writePair(t, dir, "site", ca.issue(t, leafSpec{cn: "site", dns: []string{"site.test"}}))
	src := newSource(t, Options{Listener: "https", Certs: []CertFile{cf}}, Deps{})
	srv := startServer(t, "127.0.0.1:0", src, true, echoHandler)
	port := srv.Addr().(*net.TCPAddr).Port
	url := fmt.Sprintf("https://site.test:%d/x", port)

	tests := []struct {
		proto      string
		wantMajor  int
		wantALPN   string
		wantAltSvc string
	}{
		{proto: "h1", wantMajor: 1, wantALPN: "http/1.1", wantAltSvc: fmt.Sprintf(`h3=":%d"; ma=86400`, port)},
		{proto: "h2", wantMajor: 2, wantALPN: "h2", wantAltSvc: fmt.Sprintf(`h3=":%d"; ma=86400`, port)},
		{proto: "h3", wantMajor: 3, wantALPN: "h3", wantAltSvc: ""},
	}
	for _, tt := range tests {
		t.Run(tt.proto, func(t *testing.T) {
			tc := &tls.Config{RootCAs: ca.pool, ServerName: "site.test"}
			c := clientFor(t, tt.proto, tc)
			// Dial the loopback address while verifying site.test.
			req, _ := http.NewRequest(http.MethodGet, strings.Replace(url, "site.test", "127.0.0.1", 1), nil)
			resp, err := c.Do(req)
			if err != nil {
				t.Fatalf("GET over %s: %v", tt.proto, err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK || resp.ProtoMajor != tt.wantMajor {
				t.Fatalf("status %d proto %s, want 200 and major %d", resp.StatusCode, resp.Proto, tt.wantMajor)
			}
			if got := resp.TLS.NegotiatedProtocol; got != tt.wantALPN {
				t.Errorf("ALPN %q, want %q", got, tt.wantALPN)
			}
			if !strings.HasPrefix(string(body), fmt.Sprintf("HTTP/%d", tt.wantMajor)) {
				t.Errorf("handler saw %q", body)
			}
			if got := resp.Header.Get("Alt-Svc"); got != tt.wantAltSvc {
				t.Errorf("Alt-Svc %q, want %q", got, tt.wantAltSvc)
			}
			if got := resp.TLS.PeerCertificates[0].DNSNames[0]; got != "site.test" {
				t.Errorf("served certificate for %q", got)
			}
		})
	}
}

func TestServerMinVersion(t *testing.T) {
	ca := newCA(t, "test CA")
	cf := writePair(t, t.TempDir(), "site", ca.issue(t, leafSpec{dns: []string{"site.test"}}))
	tests := []struct {
		name       string
		minVersion string
		client     uint16
		wantErr    bool
	}{
		{name: "default accepts 1.2", minVersion: "", client: tls.VersionTLS12},
		{name: "1.3 refuses 1.2", minVersion: "1.3", client: tls.VersionTLS12, wantErr: true},
		{name: "1.3 accepts 1.3", minVersion: "1.3", client: tls.VersionTLS13},
		{name: "default refuses 1.1", minVersion: "", client: tls.VersionTLS11, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := newSource(t, Options{Listener: "https", Certs: []CertFile{cf}, MinVersion: tt.minVersion}, Deps{})
			srv := startServer(t, "127.0.0.1:0", src, false, echoHandler)
			conn, err := tls.Dial("tcp", srv.Addr().String(), &tls.Config{
				RootCAs: ca.pool, ServerName: "site.test", MinVersion: tt.client, MaxVersion: tt.client,
			})
			if err == nil {
				conn.Close()
			}
			if (err != nil) != tt.wantErr {
				t.Fatalf("handshake error %v, want error %v", err, tt.wantErr)
			}
		})
	}
}

func TestServerShutdownClosesBothSockets(t *testing.T) {
	ca := newCA(t, "test CA")
	cf := writePair(t, t.TempDir(), "site", ca.issue(t, leafSpec{dns: []string{"site.test"}}))
	src := newSource(t, Options{Listener: "https", Certs: []CertFile{cf}}, Deps{})
	srv, err := Listen(ServerOptions{Addr: "127.0.0.1:0", Handler: echoHandler, TLS: src, HTTP3: true})
	if err != nil {
		t.Fatal(err)
	}
	if srv.UDPAddr().(*net.UDPAddr).Port != srv.Addr().(*net.TCPAddr).Port {
		t.Fatalf("udp %s and tcp %s differ in port", srv.UDPAddr(), srv.Addr())
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()

	// One request over h3 so the QUIC side is really up.
	c := clientFor(t, "h3", &tls.Config{RootCAs: ca.pool, ServerName: "site.test"})
	resp, err := c.Get("https://" + srv.Addr().String() + "/")
	if err != nil {
		t.Fatalf("h3 GET: %v", err)
	}
	resp.Body.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve after Shutdown: %v", err)
	}
	if _, err := net.Dial("tcp", srv.Addr().String()); err == nil {
		t.Error("tcp still accepting after Shutdown")
	}
	pc, err := net.ListenPacket("udp", srv.UDPAddr().String())
	if err != nil {
		t.Errorf("udp port still bound after Shutdown: %v", err)
	} else {
		pc.Close()
	}
}

func TestListenErrors(t *testing.T) {
	ca := newCA(t, "test CA")
	cf := writePair(t, t.TempDir(), "site", ca.issue(t, leafSpec{dns: []string{"site.test"}}))
	src := newSource(t, Options{Listener: "https", Certs: []CertFile{cf}}, Deps{})
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	tests := []struct {
		name string
		opts ServerOptions
	}{
		{name: "no handler", opts: ServerOptions{Addr: "127.0.0.1:0", TLS: src}},
		{name: "no tls", opts: ServerOptions{Addr: "127.0.0.1:0", Handler: echoHandler}},
		{name: "bad address", opts: ServerOptions{Addr: "127.0.0.1", Handler: echoHandler, TLS: src}},
		{name: "negative stream limit", opts: ServerOptions{Addr: "127.0.0.1:0", Handler: echoHandler, TLS: src, H3MaxIncomingStreams: -1}},
		{name: "port in use", opts: ServerOptions{Addr: busy.Addr().String(), Handler: echoHandler, TLS: src}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, err := Listen(tt.opts)
			if err == nil {
				srv.Shutdown(context.Background())
				t.Fatal("Listen succeeded")
			}
			var opErr *net.OpError
			if tt.name == "port in use" && !errors.As(err, &opErr) {
				t.Errorf("error %v does not wrap the socket error", err)
			}
		})
	}
}

func TestShutdownDrainsInFlight(t *testing.T) {
	ca := newCA(t, "test CA")
	cf := writePair(t, t.TempDir(), "site", ca.issue(t, leafSpec{dns: []string{"site.test"}}))
	src := newSource(t, Options{Listener: "https", Certs: []CertFile{cf}}, Deps{})
	entered := make(chan string, 2)
	release := make(chan struct{})
	blocking := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- r.Proto
		<-release
		io.WriteString(w, "done")
	})
	srv, err := Listen(ServerOptions{Addr: "127.0.0.1:0", Handler: blocking, TLS: src, HTTP3: true})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	url := "https://" + srv.Addr().String() + "/"
	tc := &tls.Config{RootCAs: ca.pool, ServerName: "site.test"}

	type result struct {
		proto string
		body  string
		err   error
	}
	results := make(chan result, 2)
	for _, proto := range []string{"h2", "h3"} {
		c := clientFor(t, proto, tc)
		go func() {
			resp, err := c.Get(url)
			if err != nil {
				results <- result{proto: proto, err: err}
				return
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			results <- result{proto: proto, body: string(b), err: err}
		}()
	}
	<-entered
	<-entered

	shutdown := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shutdown <- srv.Shutdown(ctx)
	}()
	// New QUIC connections are refused while the old ones still run.
	testwait.Until(t, 10*time.Second, "the QUIC listener to close", func() bool {
		tr := &http3.Transport{TLSClientConfig: tc.Clone()}
		defer tr.Close()
		resp, err := (&http.Client{Transport: tr, Timeout: 300 * time.Millisecond}).Get(url)
		if err == nil {
			resp.Body.Close()
		}
		return err != nil
	})
	select {
	case err := <-shutdown:
		t.Fatalf("Shutdown returned %v with requests in flight", err)
	default:
	}

	close(release)
	for range 2 {
		r := <-results
		if r.err != nil || r.body != "done" {
			t.Errorf("%s request in flight during shutdown: body %q, error %v", r.proto, r.body, r.err)
		}
	}
	if err := <-shutdown; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}
}
