package edgetls

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"

	"github.com/azimuthproxy/azimuth/internal/pki"
)

// testCA is a throw-away certificate authority, ECDSA P-256.
type testCA struct {
	ca   *pki.CA
	pem  []byte
	pool *x509.CertPool
}

func newCA(t testing.TB, cn string) *testCA {
	t.Helper()
	ca, err := pki.NewCA(cn)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{ca: ca, pem: ca.CertPEM, pool: ca.Pool}
}

// leafSpec describes a certificate to issue.
type leafSpec struct {
	cn        string
	dns       []string
	ips       []string
	notBefore time.Time // zero: an hour ago
	notAfter  time.Time // zero: 90 days from now
	client    bool      // client auth instead of server auth
}

// issued is a PEM pair plus its parsed leaf.
type issued struct {
	certPEM, keyPEM []byte
	leaf            *x509.Certificate
}

// issue signs s with the subject "CN=<cn>,O=Azimuth Test" and a random,
// unique serial.
func (ca *testCA) issue(t testing.TB, s leafSpec) issued {
	t.Helper()
	l := pki.Leaf{CN: s.cn, Org: []string{"Azimuth Test"}, DNS: s.dns, NotBefore: s.notBefore, NotAfter: s.notAfter}
	if l.NotAfter.IsZero() {
		l.NotAfter = time.Now().Add(90 * 24 * time.Hour)
	}
	if s.client {
		l.Usage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	for _, ip := range s.ips {
		l.IPs = append(l.IPs, net.ParseIP(ip))
	}
	iss, err := ca.ca.Issue(l)
	if err != nil {
		t.Fatal(err)
	}
	return issued{certPEM: iss.CertPEM, keyPEM: iss.KeyPEM, leaf: iss.Cert}
}

// tlsCert converts an issued pair for use in a client config.
func (c issued) tlsCert(t testing.TB) tls.Certificate {
	t.Helper()
	tc, err := tls.X509KeyPair(c.certPEM, c.keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return tc
}

// writePair writes c as name.pem and name-key.pem in dir.
func writePair(t testing.TB, dir, name string, c issued) CertFile {
	t.Helper()
	cf := CertFile{CertFile: filepath.Join(dir, name+".pem"), KeyFile: filepath.Join(dir, name+"-key.pem")}
	writeFile(t, cf.CertFile, c.certPEM)
	writeFile(t, cf.KeyFile, c.keyPEM)
	return cf
}

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// renameOver replaces path atomically, the way deploy tools do.
func renameOver(t testing.TB, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	writeFile(t, tmp, data)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// logRecorder is a slog.Handler that keeps messages for assertions.
type logRecorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, r)
	return nil
}
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecorder) WithGroup(string) slog.Handler      { return l }

// count reports how many records at level have msg as prefix.
func (l *logRecorder) count(level slog.Level, msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.recs {
		if r.Level == level && strings.HasPrefix(r.Message, msg) {
			n++
		}
	}
	return n
}

// fakeClock is a Clock moved by hand.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	tickers []*fakeTicker
}

type fakeTicker struct {
	c       chan time.Time
	every   time.Duration
	next    time.Time
	stopped atomic.Bool
}

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) NewTicker(d time.Duration) Ticker {
	f.mu.Lock()
	defer f.mu.Unlock()
	tk := &fakeTicker{c: make(chan time.Time, 1), every: d, next: f.now.Add(d)}
	f.tickers = append(f.tickers, tk)
	return tk
}

func (f *fakeClock) liveTickers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, tk := range f.tickers {
		if !tk.stopped.Load() {
			n++
		}
	}
	return n
}

// Advance moves time and fires due tickers; like time.Ticker, a slow
// reader drops ticks.
func (f *fakeClock) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
	for _, tk := range f.tickers {
		for !tk.stopped.Load() && !tk.next.After(f.now) {
			select {
			case tk.c <- tk.next:
			default:
			}
			tk.next = tk.next.Add(tk.every)
		}
	}
}

func (tk *fakeTicker) C() <-chan time.Time { return tk.c }
func (tk *fakeTicker) Stop()               { tk.stopped.Store(true) }

// newSource builds a Source and runs it for the test's lifetime.
func newSource(t testing.TB, opts Options, deps Deps) *Source {
	t.Helper()
	if deps.Logger == nil {
		deps.Logger = slog.New(&logRecorder{})
	}
	src, err := New(opts, deps)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- src.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-runErr; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return src
}

// echoHandler answers with the protocol and the client subject, if any.
var echoHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	subject, _ := ClientSubject(r)
	io.WriteString(w, r.Proto+"|"+subject)
})

// startServer serves h over src on a free loopback port until the test ends.
func startServer(t testing.TB, addr string, src ConfigSource, h3 bool, h http.Handler) *Server {
	t.Helper()
	srv, err := Listen(ServerOptions{Addr: addr, Handler: h, TLS: src, HTTP3: h3})
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return srv
}

// clientFor returns an HTTP client speaking proto ("h1", "h2", "h3") that
// trusts ca and sends serverName.
func clientFor(t testing.TB, proto string, tc *tls.Config) *http.Client {
	t.Helper()
	tc = tc.Clone() // transports write into their config
	var rt http.RoundTripper
	switch proto {
	case "h1", "h2":
		var p http.Protocols
		if proto == "h1" {
			p.SetHTTP1(true)
			tc.NextProtos = []string{"http/1.1"}
		} else {
			p.SetHTTP2(true)
		}
		tr := &http.Transport{TLSClientConfig: tc, Protocols: &p, ForceAttemptHTTP2: proto == "h2"}
		t.Cleanup(tr.CloseIdleConnections)
		rt = tr
	case "h3":
		tr := &http3.Transport{TLSClientConfig: tc}
		t.Cleanup(func() { tr.Close() })
		rt = tr
	default:
		t.Fatalf("unknown protocol %q", proto)
	}
	return &http.Client{Transport: rt, Timeout: 10 * time.Second}
}
