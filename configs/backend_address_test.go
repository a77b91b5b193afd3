package configs

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestBackendAddressKinds(t *testing.T) {
	t.Setenv(EnvZone, "")
	name := filepath.Join(t.TempDir(), "azimuth.yaml")
	pool := func(more, backend string) string {
		return okListeners + "pools:\n  - name: web\n" + more + "    backends:\n      - " + backend + "\n"
	}
	long := "unix:/" + strings.Repeat("a", maxUnixPath)
	for _, tc := range []struct {
		name, yaml, path, msg string
	}{
		{"relative socket", pool("", "{ address: 'unix:run/app.sock' } #<"), "pools[0].backends[0].address", "must be absolute"},
		{"socket path too long", pool("", "{ address: '"+long+"' } #<"), "pools[0].backends[0].address", "more than the 107"},
		{"socket with h2c", pool("    protocol: h2c\n", "{ address: 'unix:/run/app.sock' } #<"), "pools[0].backends[0].address", "needs protocol http1, not h2c"},
		{"socket with tls and no name", pool("    tls: {}\n", "{ address: 'unix:/run/app.sock' } #<"), "pools[0].backends[0].address", "needs tls.server_name"},
		{"name without port", pool("", "{ address: backend.internal } #<"), "pools[0].backends[0].address", "want host:port"},
		{"tls to two names without server_name", okListeners + "pools:\n  - name: web\n    tls: {} #<\n    backends:\n      - { address: a.internal:443 }\n      - { address: b.internal:443 }\n", "pools[0].tls.server_name", "backends[0] is the host name a.internal"},
		{"dns_refresh below 1s", okListeners + "pools:\n  - name: web\n    dns_refresh: 100ms #<\n    backends:\n      - { address: backend.internal:80 }\n", "pools[0].dns_refresh", "shorter than 1s"},
	} {
		t.Run(tc.name, func(t *testing.T) { wantProblem(t, name, tc.yaml, tc.path, tc.msg) })
	}

	c, err := Parse(name, []byte(okListeners+`pools:
  - name: web
    backends:
      - { address: 'unix:/run/app.sock', zone: a }
      - { address: 'unix:/run/App.sock', zone: a }
      - { address: 'backend.internal:8080', zone: b, weight: 3, max_conns: 10 }
      - { address: '[::1]:8080', zone: b }
      - { address: '127.0.0.1:8080', zone: b }
`))
	if err != nil {
		t.Fatalf("sockets differing in case, a name and IP literals of both families: %v", err)
	}
	if got := c.Pools[0].DNSRefresh; got != 30*time.Second {
		t.Errorf("dns_refresh %v by default, want 30s", got)
	}
}

// A TLS pool whose backends name one host checks that name in the
// certificates, as it did before names were resolved to addresses.
func TestNamedTLSServerNameDefault(t *testing.T) {
	t.Setenv(EnvZone, "")
	c := mustParse(t, "ok.yaml", okListeners+"pools:\n  - name: web\n    tls: {}\n    backends:\n      - { address: Backend.internal:443 }\n      - { address: 10.0.0.1:443 }\n")
	if got := c.Pools[0].TLS.ServerName; got != "Backend.internal" {
		t.Errorf("tls.server_name %q, want the backends' one name", got)
	}
}
