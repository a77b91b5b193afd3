package edgetls

import (
	"crypto/tls"
	"errors"
	"path/filepath"
	"slices"
	"testing"
)

// fakeManaged manages one name; its certificate may not be obtained yet.
type fakeManaged struct {
	name string
	cert *tls.Certificate // nil: not obtained yet
}

func (f *fakeManaged) Certificate(hello *tls.ClientHelloInfo) (*tls.Certificate, bool, error) {
	if hello.ServerName != f.name {
		return nil, false, nil
	}
	if f.cert == nil {
		return nil, true, errors.New("not obtained yet")
	}
	return f.cert, true, nil
}

// TestManagedBesideFiles: a managed name is served its managed certificate
// once obtained, the file certificates until then and for every other
// name; without files, a name nothing covers ends the handshake.
func TestManagedBesideFiles(t *testing.T) {
	ca := newCA(t, "test CA")
	dir := t.TempDir()
	file := writePair(t, dir, "file", ca.issue(t, leafSpec{dns: []string{"file.test"}}))
	obtained := ca.issue(t, leafSpec{dns: []string{"managed.test"}}).tlsCert(t)
	m := &fakeManaged{name: "managed.test"}

	src := newSource(t, Options{Listener: "l", Certs: []CertFile{file}, Managed: m}, Deps{})
	if !slices.Contains(src.TLSConfig().NextProtos, ProtoACMETLS) {
		t.Errorf("NextProtos %v without %s", src.TLSConfig().NextProtos, ProtoACMETLS)
	}
	served := func(s *Source, name string) string {
		c, err := s.GetCertificate(&tls.ClientHelloInfo{ServerName: name})
		if err != nil {
			return "error: " + err.Error()
		}
		return c.Leaf.DNSNames[0]
	}
	if got := served(src, "managed.test"); got != "file.test" {
		t.Errorf("managed name not obtained yet: served %s, want the file's", got)
	}
	m.cert = &obtained
	if got := served(src, "managed.test"); got != "managed.test" {
		t.Errorf("managed name obtained: served %s", got)
	}
	if got := served(src, "file.test"); got != "file.test" {
		t.Errorf("file name: served %s", got)
	}

	only := newSource(t, Options{Listener: "acme only", Managed: &fakeManaged{name: "managed.test"}}, Deps{})
	if got := served(only, "managed.test"); got != "error: not obtained yet" {
		t.Errorf("acme only, not obtained: %s", got)
	}
	if got := served(only, "other.test"); got != "error: "+errNoCertificate.Error() {
		t.Errorf("acme only, a name nothing covers: %s", got)
	}
	if _, err := New(Options{Listener: "none"}, Deps{}); err == nil {
		t.Error("New with neither files nor a managed source: no error")
	}
}

// TestManagedChallengeWithClientAuth: a listener that requires client
// certificates still answers an ACME CA's TLS-ALPN-01 handshake, which
// sends none; every other handshake still needs one.
func TestManagedChallengeWithClientAuth(t *testing.T) {
	ca := newCA(t, "test CA")
	dir := t.TempDir()
	file := writePair(t, dir, "file", ca.issue(t, leafSpec{dns: []string{"file.test"}}))
	caFile := filepath.Join(dir, "clients.pem")
	writeFile(t, caFile, ca.pem)
	src := newSource(t, Options{Listener: "l", Certs: []CertFile{file}, ClientAuth: "require", ClientCAFile: caFile,
		Managed: &fakeManaged{name: "managed.test"}}, Deps{})
	get := src.TLSConfig().GetConfigForClient
	challenge, err := get(&tls.ClientHelloInfo{ServerName: "managed.test", SupportedProtos: []string{ProtoACMETLS}})
	if err != nil || challenge.ClientAuth != tls.NoClientCert {
		t.Fatalf("acme-tls/1 handshake: client auth %v, %v; want none", challenge.ClientAuth, err)
	}
	normal, err := get(&tls.ClientHelloInfo{ServerName: "managed.test", SupportedProtos: []string{"h2", "http/1.1"}})
	if err != nil || normal.ClientAuth != tls.RequireAndVerifyClientCert {
		t.Fatalf("other handshake: client auth %v, %v; want require", normal.ClientAuth, err)
	}
	mixed, err := get(&tls.ClientHelloInfo{ServerName: "managed.test", SupportedProtos: []string{"http/1.1", ProtoACMETLS}})
	if err != nil || mixed.ClientAuth != tls.RequireAndVerifyClientCert {
		t.Fatalf("acme-tls/1 among others: client auth %v, %v; want require", mixed.ClientAuth, err)
	}
}
