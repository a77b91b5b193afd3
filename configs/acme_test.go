package configs

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestACMEConfig(t *testing.T) {
	t.Setenv(EnvZone, "")
	t.Setenv("STATE_DIRECTORY", "/var/lib/azimuth")
	name := filepath.Join(t.TempDir(), "azimuth.yaml")
	tlsOnly := func(acme string) string {
		return `listeners:
  - name: https
    address: 127.0.0.1:8443
    routes: [ { pool: web } ]
    tls:
      acme:
` + acme + okPools
	}
	withPlain := func(acme string) string {
		return `listeners:
  - name: http
    address: 127.0.0.1:8080
    routes: [ { pool: web } ]
  - name: https
    address: 127.0.0.1:8443
    routes: [ { pool: web } ]
    tls:
      acme:
` + acme + okPools
	}
	for _, tc := range []struct {
		name, yaml, path, msg string
	}{
		{"no names", strings.Replace(withPlain("        email: ops@example.com\n"), "acme:", "acme: #<", 1), "listeners[1].tls.acme.names", "at least one DNS name"},
		{"wildcard", withPlain("        names: [\"*.example.com\"] #<\n"), "listeners[1].tls.acme.names[0]", "DNS-01"},
		{"address", withPlain("        names: [192.0.2.1] #<\n"), "listeners[1].tls.acme.names[0]", "an IP address"},
		{"single label", withPlain("        names: [intranet] #<\n"), "listeners[1].tls.acme.names[0]", "not a fully qualified DNS name"},
		{"bad name", withPlain("        names: [\"a b.example.com\"] #<\n"), "listeners[1].tls.acme.names[0]", "not a fully qualified DNS name"},
		{"duplicate", withPlain("        names: [a.example.com, A.example.com] #<\n"), "listeners[1].tls.acme.names[1]", "also names[0]"},
		{"final dot", withPlain("        names: [a.example.com.] #<\n"), "listeners[1].tls.acme.names[0]", "without its final dot"},
		{"underscore", withPlain("        names: [a_b.example.com] #<\n"), "listeners[1].tls.acme.names[0]", "not a fully qualified"},
		{"internal name, public CA", withPlain("        names: [app.corp.internal] #<\n"), "listeners[1].tls.acme.names[0]", "internal name"},
		{"challenges on two hosts", strings.Replace(strings.Replace(withPlain("        names: [a.example.com]\n"), "acme:", "acme: #<", 1), "127.0.0.1:8080", "127.0.0.2:8080", 1), "listeners[1].tls.acme.challenges", "different hosts"},
		{"plain directory", withPlain("        names: [a.example.com]\n        directory: http://ca.example/dir #<\n"), "listeners[1].tls.acme.directory", "https://"},
		{"bad email", withPlain("        names: [a.example.com]\n        email: ops #<\n"), "listeners[1].tls.acme.email", "not an email address"},
		{"unknown challenge", withPlain("        names: [a.example.com]\n        challenges: [dns-01] #<\n"), "listeners[1].tls.acme.challenges[0]", "http-01"},
		{"http-01 without a plain listener", tlsOnly("        names: [a.example.com]\n        challenges: [http-01] #<\n"), "listeners[0].tls.acme.challenges[0]", "has none"},
		{"short check interval", withPlain("        names: [a.example.com]\n        check_interval: 100ms #<\n"), "listeners[1].tls.acme.check_interval", "at least 1s"},
		{"prefix without consul", withPlain("        names: [a.example.com]\n        consul_prefix: azimuth/acme/ #<\n"), "listeners[1].tls.acme.consul_prefix", "needs a consul block"},
		{"missing CA file", withPlain("        names: [a.example.com]\n        directory_ca_file: /nonexistent/ca.pem #<\n"), "listeners[1].tls.acme.directory_ca_file", "/nonexistent/ca.pem"},
		{"neither files nor acme", `listeners:
  - name: https
    address: 127.0.0.1:8443
    routes: [ { pool: web } ]
    tls: { http3: true } #<
` + okPools, "listeners[0].tls.certificates", "or an acme block"},
	} {
		t.Run(tc.name, func(t *testing.T) { wantProblem(t, name, tc.yaml, tc.path, tc.msg) })
	}

	// An internal name from a private CA; "off" without a consul block;
	// one challenge where the listeners' hosts differ.
	mustParse(t, "ok.yaml", strings.Replace(withPlain("        names: [app.corp.internal]\n        directory: https://ca.corp.internal/acme/directory\n        consul_prefix: \"off\"\n        challenges: [http-01]\n"), "127.0.0.1:8080", "127.0.0.2:8080", 1))

	// The defaults a user gets from a block with only its names.
	c := mustParse(t, "ok.yaml", withPlain("        names: [a.example.com]\n"))
	a := c.Listeners[1].TLS.ACME
	if a.Directory != DefaultACMEDirectory || a.CheckInterval != 10*time.Minute || a.Storage != "/var/lib/azimuth/acme" || a.ConsulPrefix != "" {
		t.Errorf("defaults %+v", *a)
	}
	if !slices.Equal(a.Challenges, []string{ChallengeHTTP01, ChallengeTLSALPN01}) {
		t.Errorf("challenges with a plain listener %v, want both", a.Challenges)
	}
	c = mustParse(t, "ok.yaml", tlsOnly("        names: [a.example.com]\n"))
	if got := c.Listeners[0].TLS.ACME.Challenges; !slices.Equal(got, []string{ChallengeTLSALPN01}) {
		t.Errorf("challenges without a plain listener %v, want tls-alpn-01", got)
	}
	c = mustParse(t, "ok.yaml", "consul: { address: 127.0.0.1:8500 }\n"+withPlain("        names: [a.example.com]\n"))
	if got := c.Listeners[1].TLS.ACME.ConsulPrefix; got != DefaultACMEPrefix {
		t.Errorf("consul_prefix with a consul block %q, want %q", got, DefaultACMEPrefix)
	}
	t.Setenv("STATE_DIRECTORY", "")
	t.Setenv("HOME", "/home/ops")
	c = mustParse(t, "ok.yaml", withPlain("        names: [a.example.com]\n"))
	if got := c.Listeners[1].TLS.ACME.Storage; got != "/home/ops/.local/share/azimuth/acme" {
		t.Errorf("storage without STATE_DIRECTORY %q", got)
	}
}
