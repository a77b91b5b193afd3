// Package acmetest starts a real ACME CA for tests: Pebble, Let's
// Encrypt's test server, with pebble-challtestsrv as its DNS server, both
// on loopback and on free ports, stopped when the test ends. The CA
// resolves every name to one loopback address the test picks (the proxy's)
// and validates challenges on the ports it is given, as a public CA would
// on 80 and 443. Tests that need it fail, never skip, when the binaries
// are missing: build them with tools/pebble/build.sh.
package acmetest

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/internal/pki"
)

// Version is the Pebble release tools/pebble builds; it names the cache
// directory and must match tools/pebble/go.mod (a test checks).
const Version = "v2.10.3"

// Options choose how the CA validates.
type Options struct {
	// Address is the IPv4 address every name resolves to: where the
	// proxy under test listens.
	Address string
	// HTTPPort and TLSPort are the ports the CA validates HTTP-01 and
	// TLS-ALPN-01 challenges on (80 and 443 for a public CA).
	HTTPPort, TLSPort int
	// Validity is the lifetime of the certificates issued; zero means
	// Pebble's 90 days.
	Validity time.Duration
}

// CA is a running Pebble.
type CA struct {
	// Directory is the ACME directory URL.
	Directory string
	// DirectoryCAFile is a PEM file of the CA that signs the directory's
	// HTTPS certificate (acme.directory_ca_file).
	DirectoryCAFile string

	mgmt   string // management API, https://host:port
	client *http.Client
	out    *lockedBuffer
	stops  []func()
}

// Start runs Pebble and its DNS server for the test.
func Start(t testing.TB, o Options) *CA {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ca, err := pki.NewCA("acmetest directory CA")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue(pki.Leaf{CN: "localhost", DNS: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, caFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), filepath.Join(dir, "ca.pem")
	if err := errors.Join(leaf.WriteFiles(certFile, keyFile), os.WriteFile(caFile, ca.CertPEM, 0o644)); err != nil {
		t.Fatal(err)
	}
	ports := freePorts(t, 4) // directory, management, DNS (TCP and UDP), DNS management
	validity := uint64(o.Validity / time.Second)
	if validity == 0 {
		validity = 90 * 24 * 3600
	}
	conf := map[string]any{"pebble": map[string]any{
		"listenAddress":           fmt.Sprintf("127.0.0.1:%d", ports[0]),
		"managementListenAddress": fmt.Sprintf("127.0.0.1:%d", ports[1]),
		"certificate":             certFile,
		"privateKey":              keyFile,
		"httpPort":                o.HTTPPort,
		"tlsPort":                 o.TLSPort,
		"ocspResponderURL":        "",
		"keyAlgorithm":            "ecdsa",
		"retryAfter":              map[string]int{"authz": 1, "order": 1},
		"profiles": map[string]any{"default": map[string]any{
			"description": "the tests' profile", "validityPeriod": validity,
		}},
	}}
	confFile := filepath.Join(dir, "pebble.json")
	b, _ := json.Marshal(conf)
	if err := os.WriteFile(confFile, b, 0o644); err != nil {
		t.Fatal(err)
	}
	c := &CA{
		Directory:       fmt.Sprintf("https://127.0.0.1:%d/dir", ports[0]),
		DirectoryCAFile: caFile,
		mgmt:            fmt.Sprintf("https://127.0.0.1:%d", ports[1]),
		client:          &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool}}},
		out:             &lockedBuffer{},
	}
	dnsAddr := fmt.Sprintf("127.0.0.1:%d", ports[2])
	c.run(t, filepath.Join(filepath.Dir(bin), "pebble-challtestsrv"), nil,
		"-defaultIPv4", o.Address, "-defaultIPv6", "",
		"-dnsserver", dnsAddr, "-management", fmt.Sprintf("127.0.0.1:%d", ports[3]),
		"-http01", "", "-https01", "", "-tlsalpn01", "", "-doh", "")
	// No random sleep before validating; no authorization reuse, so every
	// order is validated.
	env := []string{"PEBBLE_VA_NOSLEEP=1", "PEBBLE_AUTHZREUSE=0"}
	c.run(t, bin, env, "-config", confFile, "-dnsserver", dnsAddr, "-strict=false")
	c.waitReady(t)
	return c
}

// waitReady waits for the directory to answer.
func (c *CA) waitReady(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := c.client.Get(c.Directory)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("pebble did not answer at %s within 30s: %v\n%s", c.Directory, err, c.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Roots returns the roots Pebble signs its certificates with (a new
// chain each run), to verify what the proxy serves.
func (c *CA) Roots(t testing.TB) *x509.CertPool {
	t.Helper()
	pool := x509.NewCertPool()
	resp, err := c.client.Get(c.mgmt + "/roots/0")
	if err != nil {
		t.Fatalf("pebble roots: %v", err)
	}
	defer resp.Body.Close()
	pem, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK || !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("pebble roots: status %d, %v: %q", resp.StatusCode, err, pem)
	}
	return pool
}

// Issued counts the certificates Pebble has issued, from its log.
func (c *CA) Issued() int { return strings.Count(c.out.String(), "Issued certificate serial") }

// Log is what Pebble and its DNS server have written.
func (c *CA) Log() string { return c.out.String() }

// Stop ends the CA and its DNS server before the test does: an ACME CA
// that cannot be reached.
func (c *CA) Stop() {
	for _, stop := range c.stops {
		stop()
	}
}

// run starts a process until Stop or the test's end, its output in c.out.
func (c *CA) run(t testing.TB, bin string, env []string, args ...string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = c.out, c.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				_ = cmd.Process.Kill()
				<-done
			}
		})
	}
	c.stops = append(c.stops, stop)
	t.Cleanup(stop)
}

// freePorts picks n distinct loopback ports, each free for TCP and UDP.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var got []int
	seen := map[int]bool{}
	for len(got) < n {
		p, err := FreePort("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		if !seen[p] {
			seen[p] = true
			got = append(got, p)
		}
	}
	return got
}

// FreePort returns a port free on host for TCP and UDP.
func FreePort(host string) (int, error) {
	for range 20 {
		l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", net.JoinHostPort(host, fmt.Sprint(port)))
		l.Close()
		if err != nil {
			continue
		}
		u.Close()
		return port, nil
	}
	return 0, fmt.Errorf("no port free for both tcp and udp on %s", host)
}

// lockedBuffer is the processes' output, written and read concurrently.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
