package acme

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3"
)

// Settings are one listener's ACME settings.
type Settings struct {
	// Listener names the listener in logs and metric labels.
	Listener string
	// Names are the DNS names managed, one certificate each.
	Names []string
	// Directory is the CA's ACME directory URL.
	Directory string
	// Email is the account's contact address; may be empty.
	Email string
	// DirectoryCAFile, when set, is the PEM bundle that verifies the
	// directory's HTTPS certificate in place of the system's roots.
	DirectoryCAFile string
	// HTTP01 and TLSALPN01 are the challenge types offered.
	HTTP01, TLSALPN01 bool
	// HTTPAddr is the address of the plain listener that answers HTTP-01
	// (through Manager.HandleHTTPChallenge), TLSAddr this listener's. The
	// ACME library tries to bind the address of a challenge it presents
	// and, finding it taken by the proxy itself, leaves the answer to it.
	HTTPAddr, TLSAddr string
	// CheckInterval is how often certificates are checked for renewal.
	CheckInterval time.Duration
}

// Storage is where a Manager keeps what it obtains: FileStorage,
// ConsulStorage or any certmagic storage.
type Storage = certmagic.Storage

// Deps are what a Manager works with.
type Deps struct {
	// Storage keeps the account, keys, certificates, challenge tokens and
	// locks: a certmagic.FileStorage, or a ConsulStorage shared by a fleet.
	Storage certmagic.Storage
	// LocalCache, with a remote Storage, keeps a copy of the certificates
	// on this machine, read first when serving: a proxy started while the
	// remote storage cannot be reached serves what it had. May be nil.
	LocalCache certmagic.Storage
	// Metrics counts orders and exports expiry; nil means none.
	Metrics *Metrics
	// Logger receives the ACME library's log lines. Nil means slog.Default().
	Logger *slog.Logger
}

// Manager obtains and renews one listener's certificates, serves them in
// handshakes and answers the CA's challenges. It runs from New until Stop
// or the end of New's context; a reload that keeps the listener's settings
// keeps its Manager.
type Manager struct {
	s       Settings
	names   map[string]bool // lower case, no trailing dot
	cache   *certmagic.Cache
	magic   *certmagic.Config
	issuer  *certmagic.ACMEIssuer
	log     *slog.Logger
	metrics *Metrics
	ctx     context.Context // ends with Stop; orders, loads and renewals run under it
	cancel  context.CancelFunc
	done    chan struct{} // closed once the cache's maintenance has stopped
}

// New makes a Manager for s, running until ctx ends or Stop. Its
// certificate cache's maintenance starts here; nothing is ordered until
// Start.
func New(ctx context.Context, s Settings, deps Deps) (*Manager, error) {
	if deps.Storage == nil {
		return nil, errors.New("acme: no storage")
	}
	if len(s.Names) == 0 {
		return nil, errors.New("acme: no names")
	}
	var roots *x509.CertPool
	if s.DirectoryCAFile != "" {
		pem, err := os.ReadFile(s.DirectoryCAFile)
		if err != nil {
			return nil, fmt.Errorf("acme directory_ca_file: %w", err)
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("acme directory_ca_file: no PEM certificate in %s", s.DirectoryCAFile)
		}
	}
	log := deps.Logger
	if log == nil {
		log = slog.Default()
	}
	m := &Manager{s: s, names: map[string]bool{}, log: log.With("listener", s.Listener, "component", "acme"), metrics: deps.Metrics}
	for _, n := range s.Names {
		m.names[normal(n)] = true
	}
	zl := zapLogger(m.log)
	m.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert:   func(certmagic.Certificate) (*certmagic.Config, error) { return m.magic, nil },
		RenewCheckInterval: s.CheckInterval,
		Logger:             zl,
	})
	m.magic = certmagic.New(m.cache, certmagic.Config{Storage: deps.Storage, LocalCache: deps.LocalCache, Logger: zl, OnEvent: m.event})
	host, httpPort := splitAddr(s.HTTPAddr)
	tlsHost, tlsPort := splitAddr(s.TLSAddr)
	if !s.HTTP01 {
		host = tlsHost
	}
	m.issuer = certmagic.NewACMEIssuer(m.magic, certmagic.ACMEIssuer{
		CA:                      s.Directory,
		Email:                   s.Email,
		Agreed:                  true,
		DisableHTTPChallenge:    !s.HTTP01,
		DisableTLSALPNChallenge: !s.TLSALPN01,
		ListenHost:              host,
		AltHTTPPort:             httpPort,
		AltTLSALPNPort:          tlsPort,
		TrustedRoots:            roots,
		Logger:                  zl,
	})
	m.magic.Issuers = []certmagic.Issuer{m.issuer}
	m.ctx, m.cancel = context.WithCancel(ctx)
	m.done = make(chan struct{})
	go func() {
		defer close(m.done)
		<-m.ctx.Done()
		// The cache's maintenance stops between two passes; a pass's
		// storage calls are bounded (storageTimeout), so this ends.
		m.cache.Stop()
		if m.metrics != nil {
			m.metrics.detach(m)
		}
	}()
	return m, nil
}

// splitAddr returns an address's host and port; port 0 when it has none.
func splitAddr(addr string) (string, int) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0
	}
	n, _ := strconv.Atoi(port)
	return host, n
}

// normal is a name as the manager keys it.
func normal(name string) string { return strings.ToLower(strings.TrimSuffix(name, ".")) }

// Load reads the certificates already in storage into the cache, within
// ctx, so that a listener whose Manager was just made serves them from its
// first handshake. A name not in storage yet is left to Start.
func (m *Manager) Load(ctx context.Context) {
	for _, n := range m.s.Names {
		if _, err := m.magic.CacheManagedCertificate(ctx, n); err != nil && !errors.Is(err, os.ErrNotExist) {
			m.log.Warn("acme certificate in storage not loaded", "name", n, "error", err)
		}
	}
}

// Start manages the names: a certificate not in the cache is loaded from
// storage or, when storage has none, ordered (retried with back-off on
// failure), and every one is renewed in the background. A storage that
// cannot be read (Consul away, no local copy) is tried again, from 1 s
// to a minute apart, until it answers. It returns at once.
func (m *Manager) Start() {
	if m.metrics != nil {
		m.metrics.attach(m)
	}
	for _, n := range m.s.Names {
		go m.manage(n)
	}
}

// manage hands name to certmagic once storage has said whether it holds a
// certificate for it: certmagic orders only on "not there", and would
// drop a name whose load failed otherwise.
func (m *Manager) manage(name string) {
	delay := time.Second
	for {
		_, err := m.magic.CacheManagedCertificate(m.ctx, name)
		if err == nil || errors.Is(err, fs.ErrNotExist) {
			if err := m.magic.ManageAsync(m.ctx, []string{name}); err != nil && m.ctx.Err() == nil {
				m.log.Error("acme management did not start", "name", name, "error", err)
			}
			return
		}
		if m.ctx.Err() != nil {
			return
		}
		m.log.Warn("acme storage not readable; trying again", "name", name, "in", delay, "error", err)
		select {
		case <-m.ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, time.Minute)
	}
}

// Stop ends orders, loads and renewals in progress and, in the
// background, the cache's maintenance; Done is closed once it has ended.
// It returns at once and may be called more than once.
func (m *Manager) Stop() { m.cancel() }

// Done is closed once the Manager has stopped.
func (m *Manager) Done() <-chan struct{} { return m.done }

// Manages reports whether serverName's certificate is this manager's.
func (m *Manager) Manages(serverName string) bool { return m.names[normal(serverName)] }

// Certificate answers a handshake: the managed certificate of the name the
// client asks for, or a TLS-ALPN-01 challenge's certificate. ok is false
// when the hello is neither; err is set when the name is managed but no
// certificate has been obtained yet.
func (m *Manager) Certificate(hello *tls.ClientHelloInfo) (cert *tls.Certificate, ok bool, err error) {
	challenge := len(hello.SupportedProtos) == 1 && hello.SupportedProtos[0] == acmez.ACMETLS1Protocol
	if !challenge && !m.Manages(hello.ServerName) {
		return nil, false, nil
	}
	cert, err = m.magic.GetCertificate(hello)
	return cert, true, err
}

// HandleHTTPChallenge answers r if it is an HTTP-01 challenge request for
// a token this manager, or a proxy sharing its storage, presented. It
// reports whether it answered.
func (m *Manager) HandleHTTPChallenge(w http.ResponseWriter, r *http.Request) bool {
	if !m.s.HTTP01 || !m.Manages(hostOnly(r.Host)) {
		return false
	}
	return m.issuer.HandleHTTPChallenge(w, r)
}

// LooksLikeHTTPChallenge reports whether r asks for an HTTP-01 token, so
// that a plain listener's other requests skip the managers.
func LooksLikeHTTPChallenge(r *http.Request) bool { return certmagic.LooksLikeHTTPChallenge(r) }

func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return hostport
}

// Expiry returns the NotAfter of each managed name's certificate in the
// cache; a name without one is absent.
func (m *Manager) Expiry() map[string]time.Time {
	out := map[string]time.Time{}
	for _, n := range m.s.Names {
		for _, c := range m.cache.AllMatchingCertificates(normal(n)) {
			if c.Leaf != nil && c.Leaf.NotAfter.After(out[n]) {
				out[n] = c.Leaf.NotAfter
			}
		}
	}
	return out
}

// event turns certmagic's events into log lines and metrics.
func (m *Manager) event(_ context.Context, name string, data map[string]any) error {
	id, _ := data["identifier"].(string)
	renewal, _ := data["renewal"].(bool)
	kind := "obtain"
	if renewal {
		kind = "renew"
	}
	switch name {
	case "cert_obtained":
		m.log.Info("acme certificate obtained", "name", id, "kind", kind)
		m.metrics.order(m.s.Listener, id, kind, "ok")
	case "cert_failed":
		if m.ctx.Err() != nil {
			return nil // cancelled by Stop: a reload, not the CA
		}
		m.log.Error("acme order failed", "name", id, "kind", kind, "error", data["error"])
		m.metrics.order(m.s.Listener, id, kind, "failed")
	case "cached_managed_cert":
		m.log.Info("acme certificate loaded", "names", data["sans"])
	}
	return nil
}

// FileStorage keeps the ACME data in dir, made (0700) if it is missing,
// with certmagic's lock files beside it.
func FileStorage(dir string) (Storage, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("acme storage: %w", err)
	}
	return &certmagic.FileStorage{Path: dir}, nil
}

// HTTP01 reports whether the manager offers HTTP-01 challenges.
func (m *Manager) HTTP01() bool { return m.s.HTTP01 }

// Names are the names managed, as written in the config.
func (m *Manager) Names() []string { return m.s.Names }
