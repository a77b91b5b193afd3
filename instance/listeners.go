package instance

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/azimuthproxy/azimuth/configs"
	"github.com/azimuthproxy/azimuth/internal/h1server"
	"github.com/azimuthproxy/azimuth/internal/proxyproto"
	"github.com/azimuthproxy/azimuth/internal/sockio"
	edgetls "github.com/azimuthproxy/azimuth/tls"
	"golang.org/x/net/netutil"
)

// swapHandler lets a listener's socket and server outlive reloads: each
// generation installs its handler, and requests in flight finish on the one
// they started with.
type swapHandler struct{ h atomic.Pointer[http.Handler] }

func (s *swapHandler) set(h http.Handler) { s.h.Store(&h) }

func (s *swapHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	(*s.h.Load()).ServeHTTP(w, r)
}

// slot is one bound listener. Its socket is kept across reloads while its
// address and binding settings stay; routes, pools and redirects change
// through its swapHandler.
type slot struct {
	name    string
	addr    string
	bound   net.Addr
	binding string // settings that need a new socket when they change
	handler swapHandler
	source  *edgetls.Source // TLS listeners only
	acme    *acmeRef        // TLS listeners with an acme block only
	tlsSrv  *edgetls.Server
	plain   *h1server.Server
	sock    *net.TCPListener   // a plain listener's socket, shared with its successor
	ln      net.Listener       // what the plain server accepts from (sock, perhaps limited)
	ctx     context.Context    // the TLS source's watcher runs under it, from serve
	cancel  context.CancelFunc // stops the TLS source's watcher
	serving bool               // serve was called
}

// bindingOf is what cannot change on a live socket: protocol, TLS files and
// settings, and the server's limits. Of an acme block only its presence
// counts: a reload that changes it swaps the listener's manager.
func bindingOf(l *configs.Listener) string {
	t := "none"
	if l.TLS != nil {
		c := *l.TLS
		c.ACME = nil
		t = fmt.Sprintf("%+v|acme:%v", c, l.TLS.ACME != nil)
	}
	return fmt.Sprintf("%s|%+v|%v|%v", t, l.Limits, l.ProxyProtocol, l.TrustedProxies)
}

// proxyProtocol wraps a listener's TCP sockets to read the PROXY header
// of its trusted peers' connections, when it asks for that.
func (i *Instance) proxyProtocol(l *configs.Listener) func(net.Listener) net.Listener {
	if !l.ProxyProtocol {
		return nil
	}
	prefixes := l.TrustedPrefixes()
	trusted := func(a netip.Addr) bool {
		for _, p := range prefixes {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	log := i.logger.With("listener", l.Name)
	return func(ln net.Listener) net.Listener {
		return proxyproto.NewListener(ln, trusted, l.Limits.ReadHeaderTimeout, log)
	}
}

// openSlot binds l's sockets. prev is the slot it replaces on the same
// address, or nil. Nothing is served until serve: a socket shared with
// prev has the clients' connections queued on it, and they must meet the
// new generation's handler, not the placeholder.
func (i *Instance) openSlot(l *configs.Listener, prev *slot) (*slot, error) {
	s := &slot{name: l.Name, addr: l.Address, binding: bindingOf(l)}
	s.handler.set(http.NotFoundHandler())
	lim := l.Limits
	if l.TLS == nil {
		sock, err := listenPlain(l.Address, prev, i.logger)
		if err != nil {
			return nil, fmt.Errorf("listener %s: %w", l.Name, err)
		}
		s.sock, s.bound, s.ln = sock, sock.Addr(), sockio.Listener{TCPListener: sock}
		if lim.MaxConnections > 0 {
			s.ln = netutil.LimitListener(s.ln, lim.MaxConnections)
		}
		// Above the limit: a connection whose PROXY header is being read
		// counts against max_connections, and past it the kernel queues.
		if wrap := i.proxyProtocol(l); wrap != nil {
			s.ln = wrap(s.ln)
		}
		var h2c http.Protocols
		h2c.SetUnencryptedHTTP2(true) // h2c prior knowledge, for gRPC clients
		s.plain = h1server.New(h1server.Options{
			Handler:           &s.handler,
			ReadHeaderTimeout: lim.ReadHeaderTimeout,
			ReadTimeout:       lim.ReadTimeout,
			WriteTimeout:      lim.WriteTimeout,
			IdleTimeout:       lim.IdleTimeout,
			MaxHeaderBytes:    int(lim.MaxHeaderBytes.Bytes()),
			Logger:            i.logger.With("listener", l.Name),
			H2C: &http.Server{
				Handler:           &s.handler,
				ReadHeaderTimeout: lim.ReadHeaderTimeout,
				ReadTimeout:       lim.ReadTimeout,
				WriteTimeout:      lim.WriteTimeout,
				IdleTimeout:       lim.IdleTimeout,
				MaxHeaderBytes:    int(lim.MaxHeaderBytes.Bytes()),
				Protocols:         &h2c,
				HTTP2:             &http.HTTP2Config{MaxConcurrentStreams: lim.H2MaxConcurrentStreams},
				ErrorLog:          slog.NewLogLogger(i.logger.Handler(), slog.LevelDebug),
			},
		})
		return s, nil
	}
	opts := tlsSourceOptions(l)
	if l.TLS.ACME != nil {
		// A rebound listener keeps its manager: the old slot serves
		// queued handshakes with it until it has shut down.
		s.acme = &acmeRef{}
		if prev != nil && prev.acme != nil {
			s.acme = prev.acme
		}
		opts.Managed = s.acme
	}
	src, err := edgetls.New(opts, edgetls.Deps{Metrics: i.tlsMetrics, Logger: i.logger})
	if err != nil {
		return nil, fmt.Errorf("listener %s: %w", l.Name, err)
	}
	var socks reuseSockets
	var replaces *edgetls.Server
	if prev != nil {
		replaces = prev.tlsSrv
	}
	srv, err := edgetls.Listen(edgetls.ServerOptions{
		Addr: l.Address, Handler: &s.handler, TLS: src, HTTP3: l.TLS.HTTP3, WrapListener: i.proxyProtocol(l),
		H2MaxConcurrentStreams: lim.H2MaxConcurrentStreams, H3MaxIncomingStreams: int64(lim.H3MaxStreams),
		ReadHeaderTimeout: lim.ReadHeaderTimeout, ReadTimeout: lim.ReadTimeout, WriteTimeout: lim.WriteTimeout,
		IdleTimeout: lim.IdleTimeout, MaxHeaderBytes: int(lim.MaxHeaderBytes.Bytes()), MaxConnections: lim.MaxConnections,
		Logger: i.logger.With("listener", l.Name), ListenConfig: socks.config(), Replaces: replaces,
	})
	if err != nil {
		socks.release()
		_ = src.Close()
		return nil, fmt.Errorf("listener %s: %w", l.Name, err)
	}
	if err := socks.steer(); err != nil {
		// Serving matters more than a smooth upgrade: without the
		// programs, only connections made or alive while a second socket
		// joins the port (a binary upgrade) may break.
		i.logger.Warn("connections may break during a binary upgrade", "listener", l.Name, "error", err)
	}
	ctx, cancel := context.WithCancel(i.ctx)
	s.source, s.tlsSrv, s.ctx, s.cancel, s.bound = src, srv, ctx, cancel, srv.Addr()
	return s, nil
}

// serve starts accepting on the slot's sockets, once its handler is set,
// and a TLS listener's watch of its certificate files: a slot a failed
// reload opened runs nothing.
func (s *slot) serve() {
	s.serving = true
	if s.tlsSrv != nil {
		go func() { _ = s.source.Run(s.ctx) }()
		go func() { _ = s.tlsSrv.Serve() }()
		return
	}
	go func() { _ = s.plain.Serve(s.ln) }()
}

// listenPlain binds a plain listener's socket. When prev, the slot it
// replaces, is plain too, the new listener shares prev's socket rather
// than binding one beside it (see edgetls.ShareListener): closing prev's
// would reset the connections the kernel had queued on it.
func listenPlain(addr string, prev *slot, logger *slog.Logger) (*net.TCPListener, error) {
	if prev != nil && prev.sock != nil {
		return edgetls.ShareListener(prev.sock)
	}
	ln, err := listenTCP(addr, logger)
	if err != nil {
		return nil, err
	}
	return ln.(*net.TCPListener), nil
}

// port returns the bound port, for redirects and Alt-Svc.
func (s *slot) port() int {
	_, p, _ := net.SplitHostPort(s.bound.String())
	n, _ := strconv.Atoi(p)
	return n
}

// shutdown stops accepting, lets requests in flight finish until ctx ends
// (HTTP/2 and HTTP/3 clients get GOAWAY), then closes what is left. With
// next, the slot that replaces it on the same socket, serving already, its
// HTTP/1.1 connections move there instead of closing (a reload never
// closes a client's connection under it).
func (s *slot) shutdown(ctx context.Context, next *slot) error {
	var err error
	switch {
	case s.tlsSrv != nil && s.serving && next != nil && next.tlsSrv != nil:
		err = s.tlsSrv.HandOver(ctx, next.tlsSrv)
		s.cancel()
		_ = s.source.Close()
	case s.tlsSrv != nil:
		err = s.tlsSrv.Shutdown(ctx)
		s.cancel()
		_ = s.source.Close()
	case !s.serving:
		err = s.ln.Close() // opened by a reload that then failed
	case next != nil && next.plain != nil:
		err = s.plain.HandOver(ctx, next.plain)
	default:
		err = s.plain.Shutdown(ctx)
	}
	return err
}

// close releases a slot that never served (its plan was dropped): there
// is nothing to wait for, so it closes at once.
func (s *slot) close() {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = s.shutdown(ctx, nil)
}

// retireSlot shuts a replaced or removed listener down in the background,
// within grace; next is the slot that replaces it on its socket, or nil.
func (i *Instance) retireSlot(s *slot, next *slot, grace time.Duration) {
	i.bg.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), grace)
		defer cancel()
		start := time.Now()
		// The ACME manager of a listener that left, or lost its acme
		// block, stops once the slot has served its last handshake.
		defer func() {
			if s.acme != nil && (next == nil || next.acme != s.acme) {
				s.acme.stop()
			}
		}()
		if err := s.shutdown(ctx, next); err != nil {
			i.logger.Warn("listener closed before its requests finished", "listener", s.name, "address", s.addr, "error", err)
			return
		}
		i.logger.Info("listener closed", "listener", s.name, "address", s.addr, "took", time.Since(start))
	})
}
