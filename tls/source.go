package edgetls

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
)

// ALPN protocol IDs offered by the listener configs.
const (
	ProtoH2    = "h2"
	ProtoHTTP1 = "http/1.1"
	ProtoH3    = "h3"
)

// Source is the TLS side of one listener: the certificate store, the ticket
// key ring and the settings. Its configs read the current certificate
// snapshot on every handshake, so a reload reaches every connection that
// starts afterwards, and established connections are untouched.
type Source struct {
	opts  Options
	log   *slog.Logger
	clock Clock

	certs   atomic.Pointer[snapshot]
	tickets *ticketKeys
	tcp     *tls.Config
	quic    *tls.Config
	metrics *Metrics // nil without metrics

	// With client authentication, the configs handshakes use, built around
	// the client CA bundle last read (see reloadClientCAs).
	handshake atomic.Pointer[handshakeConfigs]

	// reloadMu serializes reloads (file events, daily checks, Reload calls).
	reloadMu sync.Mutex

	runMu   sync.Mutex
	running bool
	closed  bool
	stop    context.CancelFunc
	done    chan struct{}
}

// New loads every pair in opts and builds the listener configs. A pair that
// fails to load is an error here: at start there is no old one to keep.
func New(opts Options, deps Deps) (*Source, error) {
	opts = opts.withDefaults()
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("tls options of listener %q: %w", opts.Listener, err)
	}
	s := &Source{opts: opts, log: deps.Logger, clock: deps.Clock}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.log = s.log.With("listener", opts.Listener)
	if s.clock == nil {
		s.clock = wallClock{}
	}

	entries := make([]*certEntry, len(opts.Certs))
	var errs []error
	for i, cf := range opts.Certs {
		e, err := loadPair(cf)
		if err != nil {
			errs = append(errs, fmt.Errorf("certificates[%d]: %w", i, err))
			continue
		}
		entries[i] = e
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("loading certificates of listener %q: %w", opts.Listener, err)
	}
	s.certs.Store(newSnapshot(entries))
	s.warnExpiring(entries)

	tickets, err := newTicketKeys(opts.TicketKeysKept)
	if err != nil {
		return nil, err
	}
	s.tickets = tickets

	base, err := s.baseConfig()
	if err != nil {
		return nil, err
	}
	s.tcp = base.Clone()
	s.tcp.NextProtos = []string{ProtoH2, ProtoHTTP1}
	if opts.Managed != nil {
		s.tcp.NextProtos = append(s.tcp.NextProtos, ProtoACMETLS)
	}
	s.quic = base.Clone()
	s.quic.NextProtos = []string{ProtoH3}
	s.quic.MinVersion = tls.VersionTLS13 // QUIC is TLS 1.3 only (RFC 9001)
	if base.ClientAuth != tls.NoClientCert {
		cas, err := loadCABundle(s.opts.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("client_ca_file of listener %q: %w", s.opts.Listener, err)
		}
		s.handshake.Store(s.handshakeConfigs(cas))
		// An ACME CA's TLS-ALPN-01 validation sends no client
		// certificate: its handshake (acme-tls/1 alone) asks for none.
		challenge := s.tcp.Clone()
		challenge.ClientAuth, challenge.GetConfigForClient = tls.NoClientCert, nil
		s.tcp.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			if opts.Managed != nil && len(hello.SupportedProtos) == 1 && hello.SupportedProtos[0] == ProtoACMETLS {
				return challenge, nil
			}
			return s.handshake.Load().tcp, nil
		}
		s.quic.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) { return s.handshake.Load().quic, nil }
	}

	if deps.Metrics != nil {
		s.metrics = deps.Metrics
		s.metrics.attach(s)
	}
	return s, nil
}

// baseConfig holds what TCP and QUIC share. Cipher suites stay Go's
// defaults: modern AEAD suites only, ordered by the runtime.
func (s *Source) baseConfig() (*tls.Config, error) {
	minV, _ := parseMinVersion(s.opts.MinVersion)
	auth, _ := parseClientAuth(s.opts.ClientAuth)
	cfg := &tls.Config{
		MinVersion:     minV,
		GetCertificate: s.GetCertificate,
		ClientAuth:     auth,
	}
	s.tickets.install(cfg)
	return cfg, nil
}

// caBundle is one reading of a CA bundle file.
type caBundle struct {
	pool *x509.CertPool
	n    int      // certificates in it
	sum  [32]byte // SHA-256 of the file, to skip reloads that change nothing
}

// handshakeConfigs are the TCP and QUIC configs of one client CA bundle.
// The listeners' configs hand them to each handshake (GetConfigForClient),
// so a reloaded bundle verifies every connection that starts afterwards.
type handshakeConfigs struct {
	tcp, quic *tls.Config
	cas       *caBundle
}

func (s *Source) handshakeConfigs(cas *caBundle) *handshakeConfigs {
	h := &handshakeConfigs{tcp: s.tcp.Clone(), quic: s.quic.Clone(), cas: cas}
	h.tcp.ClientCAs, h.quic.ClientCAs = cas.pool, cas.pool
	// A handshake's config is final: it must not send it on again.
	h.tcp.GetConfigForClient, h.quic.GetConfigForClient = nil, nil
	return h
}

// loadCABundle reads a PEM bundle that must hold at least one certificate
// and nothing that is not one: a block of another type, or a last block
// cut short (a file still being written), is an error, where
// x509.CertPool.AppendCertsFromPEM would skip it without a word.
func loadCABundle(file string) (*caBundle, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading CA bundle: %w", err)
	}
	cas := &caBundle{pool: x509.NewCertPool(), sum: sha256.Sum256(data)}
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			if cas.n > 0 && len(bytes.TrimSpace(rest)) != 0 {
				return nil, fmt.Errorf("%s: ends in text that is not a whole PEM block (a file cut short?)", file)
			}
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("%s: a %q PEM block; the bundle holds certificates only", file, block.Type)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: certificate %d: %w", file, cas.n+1, err)
		}
		cas.pool.AddCert(cert)
		cas.n++
	}
	if cas.n == 0 {
		return nil, fmt.Errorf("no PEM certificate found in %s", file)
	}
	return cas, nil
}

// TLSConfig returns the config for the TCP listener (ALPN h2, http/1.1).
// It returns a fresh clone; all clones share the live certificates and keys.
func (s *Source) TLSConfig() *tls.Config { return s.tcp.Clone() }

// QUICTLSConfig returns the config for the QUIC listener (ALPN h3, TLS 1.3).
func (s *Source) QUICTLSConfig() *tls.Config { return s.quic.Clone() }

// GetCertificate picks the certificate for a handshake; it is the
// tls.Config.GetCertificate of both configs.
func (s *Source) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	snap := s.certs.Load()
	if s.opts.Managed != nil {
		cert, ok, err := s.opts.Managed.Certificate(hello)
		switch {
		case ok && err == nil:
			return cert, nil
		case ok && len(snap.entries) == 0:
			return nil, err
		}
	}
	if len(snap.entries) == 0 {
		return nil, errNoCertificate
	}
	return snap.certificate(hello), nil
}

// errNoCertificate ends the handshake of a name no certificate covers on
// a listener whose certificates are all managed.
var errNoCertificate = errors.New("no certificate for this server name")

// Run watches the certificate files and rotates session ticket keys until
// ctx is done or Close is called. It returns nil on a clean stop.
func (s *Source) Run(ctx context.Context) error {
	s.runMu.Lock()
	if s.closed {
		s.runMu.Unlock()
		return nil
	}
	if s.running {
		s.runMu.Unlock()
		return errors.New("tls source is already running")
	}
	ctx, cancel := context.WithCancel(ctx)
	s.running, s.stop, s.done = true, cancel, make(chan struct{})
	done := s.done
	s.runMu.Unlock()
	defer close(done)
	defer cancel()

	w, err := s.newWatcher()
	if err != nil {
		return err
	}
	defer w.close()
	// Files replaced between New and the watch starting sent no event.
	_ = s.Reload()

	rot := s.clock.NewTicker(s.opts.TicketKeyRotation)
	defer rot.Stop()
	daily := s.clock.NewTicker(expiryCheckInterval)
	defer daily.Stop()

	for {
		select {
		case <-ctx.Done():
			return nil
		case <-rot.C():
			s.safely("rotating session ticket key", func() {
				if err := s.tickets.rotate(); err != nil {
					s.log.Error("rotating session ticket key", "error", err)
					return
				}
				s.log.Debug("rotated session ticket key", "generation", s.tickets.generation())
			})
		case <-daily.C():
			s.safely("checking certificate expiry", func() { s.warnExpiring(s.certs.Load().entries) })
		case <-w.reload:
			s.safely("reloading certificates", func() { _ = s.Reload() })
		case err := <-w.errs:
			s.log.Error("watching certificate files", "error", err)
		}
	}
}

// safely runs one step of Run's loop, logging a panic instead of taking
// the process down: the listener keeps serving its last good snapshot.
func (s *Source) safely(what string, step func()) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("panic while "+what, "panic", r)
		}
	}()
	step()
}

// Close stops Run and waits for it to return, and takes the Source's
// certificates out of Metrics; a Run started after Close returns at once.
// Configs already handed out keep working, so a retired generation can
// drain. It is safe to call more than once and without Run.
func (s *Source) Close() error {
	s.runMu.Lock()
	s.closed = true
	stop, done := s.stop, s.done
	s.runMu.Unlock()
	if s.metrics != nil {
		s.metrics.detach(s)
	}
	if stop == nil {
		return nil
	}
	stop()
	<-done
	return nil
}
