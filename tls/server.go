package edgetls

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/azimuthproxy/azimuth/internal/h1server"
	"github.com/azimuthproxy/azimuth/internal/sockio"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"golang.org/x/net/netutil"
)

// Server defaults, applied by ServerOptions.withDefaults.
const (
	DefaultH2MaxConcurrentStreams = 250
	DefaultH3MaxIncomingStreams   = 100
	DefaultReadHeaderTimeout      = 10 * time.Second
	DefaultIdleTimeout            = 120 * time.Second
	DefaultAltSvcMaxAge           = 24 * time.Hour
)

// ConfigSource gives a Server its TLS configs; *Source implements it.
type ConfigSource interface {
	TLSConfig() *tls.Config
	QUICTLSConfig() *tls.Config
}

// ServerOptions configures one TLS listener serving HTTP/1.1 and HTTP/2 over
// TCP and, with HTTP3, HTTP/3 over UDP on the same port.
type ServerOptions struct {
	// Addr is host:port; port 0 picks a free port that is free for both TCP
	// and UDP.
	Addr string
	// Handler serves every request, whatever the protocol.
	Handler http.Handler
	// TLS supplies the certificates; normally a *Source.
	TLS ConfigSource
	// HTTP3 adds the QUIC listener and the Alt-Svc header on TCP responses.
	HTTP3 bool
	// WrapListener, if set, wraps the TCP listener, above the
	// MaxConnections limit and below TLS (the PROXY protocol's header
	// comes before the handshake).
	WrapListener func(net.Listener) net.Listener
	// H2MaxConcurrentStreams caps streams per HTTP/2 connection.
	// Zero means DefaultH2MaxConcurrentStreams.
	H2MaxConcurrentStreams int
	// H3MaxIncomingStreams caps concurrent request streams per QUIC
	// connection. Zero means DefaultH3MaxIncomingStreams.
	H3MaxIncomingStreams int64
	// ReadHeaderTimeout bounds reading request headers on TCP.
	// Zero means DefaultReadHeaderTimeout.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request on TCP; zero is none.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing a response on TCP; zero is none, so long
	// streams are not cut.
	WriteTimeout time.Duration
	// IdleTimeout closes idle keep-alive connections (TCP and QUIC).
	// Zero means DefaultIdleTimeout.
	IdleTimeout time.Duration
	// MaxHeaderBytes caps a request's header block (TCP and QUIC); zero
	// means net/http's default of 1 MiB.
	MaxHeaderBytes int
	// MaxConnections caps open TCP connections; further clients wait in
	// the kernel's accept queue. Zero is unlimited. QUIC connections are
	// capped per connection by H3MaxIncomingStreams only.
	MaxConnections int
	// AltSvcMaxAge is the ma= of the Alt-Svc header.
	// Zero means DefaultAltSvcMaxAge.
	AltSvcMaxAge time.Duration
	// Logger receives server errors. Nil means slog.Default().
	Logger *slog.Logger
	// ListenConfig binds the sockets; nil means net.ListenConfig{}. The
	// proxy passes one that sets SO_REUSEPORT, so a new process can bind
	// the same port while the old socket drains, and a reload its new UDP
	// socket (the TCP one it shares, see Replaces).
	ListenConfig *net.ListenConfig
	// Replaces, if set, is the server on the same address that this one
	// replaces (a reload that changed its settings): the new server
	// shares its TCP socket rather than binding one beside it, so the
	// connections queued on it are accepted, never reset. Call Replaces'
	// Shutdown after the new server serves.
	Replaces *Server
}

func (o ServerOptions) withDefaults() ServerOptions {
	if o.H2MaxConcurrentStreams == 0 {
		o.H2MaxConcurrentStreams = DefaultH2MaxConcurrentStreams
	}
	if o.H3MaxIncomingStreams == 0 {
		o.H3MaxIncomingStreams = DefaultH3MaxIncomingStreams
	}
	if o.ReadHeaderTimeout == 0 {
		o.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if o.IdleTimeout == 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.AltSvcMaxAge == 0 {
		o.AltSvcMaxAge = DefaultAltSvcMaxAge
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Server is a bound TLS listener: the proxy's own HTTP/1.1 server (the
// one plain listeners run, so the same bytes get the same answer on every
// listener) with Go's HTTP/2 server for connections that negotiate h2,
// and optionally a quic-go http3.Server beside it on the same port, all
// fed by one ConfigSource and one Handler.
type Server struct {
	tcp  *h1server.Server
	ln   net.Listener     // what tcp serves: sock, perhaps limited
	sock *net.TCPListener // the TCP socket, shared with a replacing server

	serving atomic.Bool

	// The QUIC side, nil without HTTP/3. The server owns the UDP socket,
	// the QUIC transport on it and the listener, so that Shutdown can stop
	// accepting QUIC connections before anything else while the ones
	// already open drain.
	h3  *http3.Server
	pc  net.PacketConn
	qtr *quic.Transport
	qln *quic.EarlyListener

	shutdownOnce sync.Once
	shutdownErr  error
}

// Listen binds the TCP socket and, with HTTP3, the UDP socket on the same
// port. Nothing is served until Serve.
func Listen(o ServerOptions) (*Server, error) {
	if o.Handler == nil || o.TLS == nil {
		return nil, errors.New("listening: handler and tls source are required")
	}
	if o.H2MaxConcurrentStreams < 0 || o.H3MaxIncomingStreams < 0 || o.MaxHeaderBytes < 0 || o.MaxConnections < 0 ||
		o.ReadHeaderTimeout < 0 || o.ReadTimeout < 0 || o.WriteTimeout < 0 || o.IdleTimeout < 0 || o.AltSvcMaxAge < 0 {
		return nil, fmt.Errorf("listening on %s: stream limits and timeouts must not be negative", o.Addr)
	}
	o = o.withDefaults()
	lc := o.ListenConfig
	if lc == nil {
		lc = &net.ListenConfig{}
	}
	var share *net.TCPListener
	if o.Replaces != nil {
		share = o.Replaces.sock
	}
	sock, pc, err := bind(lc, o.Addr, o.HTTP3, share)
	if err != nil {
		return nil, err
	}
	port := sock.Addr().(*net.TCPAddr).Port
	var ln net.Listener = sockio.Listener{TCPListener: sock}
	if o.MaxConnections > 0 {
		ln = netutil.LimitListener(ln, o.MaxConnections)
	}
	if o.WrapListener != nil {
		ln = o.WrapListener(ln)
	}

	handler := o.Handler
	if o.HTTP3 {
		handler = AltSvc(port, o.AltSvcMaxAge)(handler)
	}
	tcpTLS := o.TLS.TLSConfig()
	var h2 http.Protocols
	h2.SetHTTP2(true) // connections come here handshaken, with ALPN h2
	s := &Server{ln: ln, sock: sock, pc: pc}
	s.tcp = h1server.New(h1server.Options{
		Handler:           handler,
		ReadHeaderTimeout: o.ReadHeaderTimeout,
		ReadTimeout:       o.ReadTimeout,
		WriteTimeout:      o.WriteTimeout,
		IdleTimeout:       o.IdleTimeout,
		MaxHeaderBytes:    o.MaxHeaderBytes,
		Logger:            o.Logger,
		TLSConfig:         tcpTLS,
		H2: &http.Server{
			Handler:           handler,
			TLSConfig:         tcpTLS,
			Protocols:         &h2,
			HTTP2:             &http.HTTP2Config{MaxConcurrentStreams: o.H2MaxConcurrentStreams},
			ReadHeaderTimeout: o.ReadHeaderTimeout,
			ReadTimeout:       o.ReadTimeout,
			WriteTimeout:      o.WriteTimeout,
			IdleTimeout:       o.IdleTimeout,
			MaxHeaderBytes:    o.MaxHeaderBytes,
			ErrorLog:          slog.NewLogLogger(o.Logger.Handler(), slog.LevelDebug),
		},
	})
	if o.HTTP3 {
		s.qtr = &quic.Transport{Conn: pc}
		qln, err := s.qtr.ListenEarly(http3.ConfigureTLSConfig(o.TLS.QUICTLSConfig()), &quic.Config{
			MaxIncomingStreams: o.H3MaxIncomingStreams,
			MaxIdleTimeout:     o.IdleTimeout,
			// 0-RTT stays off: early data can be replayed, and the proxy
			// forwards non-idempotent requests.
			Allow0RTT: false,
		})
		if err != nil {
			ln.Close()
			s.qtr.Close()
			pc.Close()
			return nil, fmt.Errorf("listening for quic on %s: %w", pc.LocalAddr(), err)
		}
		s.qln = qln
		s.h3 = &http3.Server{Handler: o.Handler, IdleTimeout: o.IdleTimeout, MaxHeaderBytes: o.MaxHeaderBytes, Logger: o.Logger}
	}
	return s, nil
}

// bind listens on TCP, or shares the socket share, and, if udp, on UDP at
// the same port. With port 0 it retries a few times when the kernel's TCP
// pick is taken on UDP.
func bind(lc *net.ListenConfig, addr string, udp bool, share *net.TCPListener) (*net.TCPListener, net.PacketConn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("listening on %q: %w", addr, err)
	}
	attempts := 1
	if port == "0" && share == nil {
		attempts = 10
	}
	var lastErr error
	for range attempts {
		var ln *net.TCPListener
		if share != nil {
			ln, err = ShareListener(share)
		} else {
			var l net.Listener
			if l, err = lc.Listen(context.Background(), "tcp", addr); err == nil {
				ln = l.(*net.TCPListener)
			}
		}
		if err != nil {
			return nil, nil, fmt.Errorf("listening on tcp %s: %w", addr, err)
		}
		if !udp {
			return ln, nil, nil
		}
		p := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
		pc, err := lc.ListenPacket(context.Background(), "udp", net.JoinHostPort(host, p))
		if err == nil {
			return ln, pc, nil
		}
		ln.Close()
		lastErr = fmt.Errorf("listening on udp %s: %w", net.JoinHostPort(host, p), err)
	}
	return nil, nil, lastErr
}

// Addr is the bound TCP address; the UDP one has the same port.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// UDPAddr is the bound UDP address, or nil without HTTP/3.
func (s *Server) UDPAddr() net.Addr {
	if s.pc == nil {
		return nil
	}
	return s.pc.LocalAddr()
}

// Serve serves TCP and QUIC until Shutdown or a listener fails. It returns
// nil after Shutdown. If one side fails, the other is closed and the first
// error is returned.
func (s *Server) Serve() error {
	errc := make(chan error, 2)
	n := 1
	s.serving.Store(true)
	go func() { errc <- closedIsNil(s.tcp.Serve(s.ln)) }()
	if s.h3 != nil {
		n++
		go func() { errc <- closedIsNil(s.h3.ServeListener(s.qln)) }()
	}
	var first error
	for range n {
		if err := <-errc; err != nil && first == nil {
			first = err
			s.closeNow()
		}
	}
	return first
}

// Shutdown stops accepting QUIC connections first, so new clients fall back
// to TCP while it still answers, then drains both sides at once: HTTP/3
// and HTTP/2 connections get GOAWAY, TCP stops accepting and each HTTP/1.1
// connection answers what it has read or is about to read (with
// Connection: close) before it closes. Requests in flight finish until
// ctx is done; then connections are closed. A slow HTTP/3 client does not
// eat the TCP side's grace period.
func (s *Server) Shutdown(ctx context.Context) error {
	return s.stop(ctx, "shutting down http/1.1+h2", func() error { return s.tcp.Shutdown(ctx) })
}

// HandOver replaces this server by next on the same port (next shares its
// TCP socket, see ServerOptions.Replaces, and serves already): QUIC stops
// accepting and drains as in Shutdown, and every HTTP/1.1 connection moves
// to next as soon as it waits for a request, kept open (h1server's
// HandOver); HTTP/2 connections get GOAWAY. It returns when nothing is
// left or ctx ends, then closes what is.
func (s *Server) HandOver(ctx context.Context, next *Server) error {
	return s.stop(ctx, "handing http/1.1+h2 over", func() error { return s.tcp.HandOver(ctx, next.tcp) })
}

// stop ends the server, once, for Shutdown and HandOver: QUIC stops
// accepting first and drains within ctx while tcp (the TCP side's own
// Shutdown or HandOver) runs; what tcp leaves open is closed. Every error
// is joined, tcp's under what.
func (s *Server) stop(ctx context.Context, what string, tcp func() error) error {
	s.shutdownOnce.Do(func() {
		var errs []error
		h3done := make(chan error, 1)
		if s.h3 != nil {
			if err := s.qln.Close(); err != nil {
				errs = append(errs, fmt.Errorf("closing quic listener: %w", err))
			}
			go func() { h3done <- s.h3.Shutdown(ctx) }()
		} else {
			h3done <- nil
		}
		if !s.serving.Load() {
			_ = s.ln.Close() // never served: nothing tracks it but us
		}
		if err := tcp(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", what, err))
			_ = s.tcp.Close()
		}
		if err := <-h3done; err != nil {
			errs = append(errs, fmt.Errorf("shutting down http/3: %w", err))
		}
		if s.h3 != nil {
			s.closeQUIC()
		}
		s.shutdownErr = errors.Join(errs...)
	})
	return s.shutdownErr
}

// closeQUIC releases the QUIC transport and its UDP socket.
func (s *Server) closeQUIC() {
	s.qtr.Close()
	s.pc.Close()
}

// closeNow closes both sides at once, after one of them failed.
func (s *Server) closeNow() {
	if s.h3 != nil {
		s.h3.Close()
		s.qln.Close()
		s.closeQUIC()
	}
	s.tcp.Close()
}

// closedIsNil maps the servers' "closed on purpose" errors to nil.
func closedIsNil(err error) error {
	if errors.Is(err, http.ErrServerClosed) || errors.Is(err, quic.ErrServerClosed) || errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// AltSvc returns middleware that advertises HTTP/3 on port for maxAge
// (RFC 7838), for responses sent over TCP.
func AltSvc(port int, maxAge time.Duration) func(http.Handler) http.Handler {
	value := fmt.Sprintf(`h3=":%d"; ma=%d`, port, int64(maxAge/time.Second))
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Add("Alt-Svc", value)
			next.ServeHTTP(w, r)
		})
	}
}
