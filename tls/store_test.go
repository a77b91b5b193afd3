package edgetls

import (
	"crypto/tls"
	"net"
	"strings"
	"testing"
)

func TestSNISelection(t *testing.T) {
	ca := newCA(t, "test CA")
	dir := t.TempDir()
	def := writePair(t, dir, "default", ca.issue(t, leafSpec{cn: "default", dns: []string{"default.test"}}))
	exact := writePair(t, dir, "api", ca.issue(t, leafSpec{dns: []string{"api.example.com"}}))
	wild := writePair(t, dir, "wild", ca.issue(t, leafSpec{dns: []string{"*.example.com"}}))
	ip := writePair(t, dir, "ip", ca.issue(t, leafSpec{cn: "by-ip", ips: []string{"127.0.0.2"}}))
	src := newSource(t, Options{Listener: "https", Certs: []CertFile{def, exact, wild, ip}}, Deps{})

	// One handler, two loopback addresses: 127.0.0.2 carries an IP SAN.
	onOne := startServer(t, "127.0.0.1:0", src, false, echoHandler)
	onTwo := startServer(t, "127.0.0.2:0", src, false, echoHandler)

	tests := []struct {
		name string
		addr string
		sni  string
		want string // first DNS SAN, or CN when none
	}{
		{name: "exact name beats wildcard", addr: onOne.Addr().String(), sni: "api.example.com", want: "api.example.com"},
		{name: "exact name any case", addr: onOne.Addr().String(), sni: "API.Example.COM", want: "api.example.com"},
		{name: "wildcard one label", addr: onOne.Addr().String(), sni: "www.example.com", want: "*.example.com"},
		{name: "wildcard not two labels", addr: onOne.Addr().String(), sni: "a.b.example.com", want: "default.test"},
		{name: "wildcard not the apex", addr: onOne.Addr().String(), sni: "example.com", want: "default.test"},
		{name: "unknown name gets default", addr: onOne.Addr().String(), sni: "other.test", want: "default.test"},
		{name: "no SNI gets default", addr: onOne.Addr().String(), sni: "", want: "default.test"},
		{name: "no SNI on IP SAN address", addr: onTwo.Addr().String(), sni: "", want: "by-ip"},
		{name: "name on IP SAN address", addr: onTwo.Addr().String(), sni: "api.example.com", want: "api.example.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// ServerName empty and InsecureSkipVerify let the test client send
			// no SNI; it reads the served certificate instead of verifying.
			conn, err := tls.Dial("tcp", tt.addr, &tls.Config{ServerName: tt.sni, InsecureSkipVerify: true})
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			defer conn.Close()
			leaf := conn.ConnectionState().PeerCertificates[0]
			got := leaf.Subject.CommonName
			if len(leaf.DNSNames) > 0 {
				got = leaf.DNSNames[0]
			}
			if got != tt.want {
				t.Errorf("served %q, want %q", got, tt.want)
			}
		})
	}

	t.Run("served certificates verify for their names", func(t *testing.T) {
		for _, name := range []string{"api.example.com", "www.example.com", "default.test"} {
			conn, err := tls.Dial("tcp", onOne.Addr().String(), &tls.Config{ServerName: name, RootCAs: ca.pool})
			if err != nil {
				t.Fatalf("verifying %s: %v", name, err)
			}
			conn.Close()
		}
		_, port, _ := net.SplitHostPort(onTwo.Addr().String())
		conn, err := tls.Dial("tcp", "127.0.0.2:"+port, &tls.Config{RootCAs: ca.pool})
		if err != nil {
			t.Fatalf("verifying IP SAN: %v", err)
		}
		conn.Close()
	})
}

func TestNewRejectsBadOptions(t *testing.T) {
	ca := newCA(t, "test CA")
	dir := t.TempDir()
	good := writePair(t, dir, "good", ca.issue(t, leafSpec{dns: []string{"a.test"}}))
	other := writePair(t, dir, "other", ca.issue(t, leafSpec{dns: []string{"b.test"}}))
	mismatched := CertFile{CertFile: good.CertFile, KeyFile: other.KeyFile}
	garbage := CertFile{CertFile: dir + "/garbage.pem", KeyFile: good.KeyFile}
	writeFile(t, garbage.CertFile, []byte("not a certificate"))

	tests := []struct {
		name string
		opts Options
		want []string // substrings of the error
	}{
		{name: "no certificates", opts: Options{}, want: []string{"at least one"}},
		{name: "empty paths", opts: Options{Certs: []CertFile{{}}}, want: []string{"certificates[0].cert_file: empty", "certificates[0].key_file: empty"}},
		{name: "bad min version", opts: Options{Certs: []CertFile{good}, MinVersion: "1.1"}, want: []string{`min_version: "1.1"`}},
		{name: "bad client auth", opts: Options{Certs: []CertFile{good}, ClientAuth: "maybe"}, want: []string{`client_auth: "maybe"`}},
		{name: "require without CA", opts: Options{Certs: []CertFile{good}, ClientAuth: "require"}, want: []string{"client_ca_file: required"}},
		{name: "missing CA file", opts: Options{Certs: []CertFile{good}, ClientAuth: "require", ClientCAFile: dir + "/nope.pem"}, want: []string{"client_ca_file", "no such file"}},
		{name: "CA file without PEM", opts: Options{Certs: []CertFile{good}, ClientAuth: "require", ClientCAFile: garbage.CertFile}, want: []string{"no PEM certificate"}},
		{name: "missing cert file", opts: Options{Certs: []CertFile{{CertFile: dir + "/nope.pem", KeyFile: good.KeyFile}}}, want: []string{"reading certificate", "no such file"}},
		{name: "garbage cert", opts: Options{Certs: []CertFile{good, garbage}}, want: []string{"certificates[1]", "parsing pair"}},
		{name: "key does not match", opts: Options{Certs: []CertFile{mismatched}}, want: []string{"private key does not match public key"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.opts, Deps{})
			if err == nil {
				t.Fatal("New succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}
