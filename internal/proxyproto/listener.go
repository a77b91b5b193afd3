package proxyproto

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"
)

// Listener reads the PROXY header of every connection from a trusted
// peer (a load balancer in front) before handing the connection on, with
// the header's client as its RemoteAddr. Connections from other peers are
// handed on as they are: their first bytes are the client's own, and a
// PROXY header there is a bad request, never believed.
//
// Headers are read on a goroutine per connection, within the timeout: a
// peer that connects and sends nothing (a TCP health check) holds only
// its own goroutine, never the accepting of others. Nothing is accepted
// before the first Accept (a listener opened by a reload that then fails
// takes no connection from the socket it shares). When the inner listener
// fails (closed, or its deadline passed as a server stops), the
// connections whose header was being read are still handed out before
// the error. Close stops the accepting goroutine and every header read.
type Listener struct {
	inner   net.Listener
	trusted func(netip.Addr) bool
	timeout time.Duration
	log     *slog.Logger

	ready  chan net.Conn
	failed chan struct{} // closed once the inner listener failed
	err    error         // why; read after failed is closed
	done   chan struct{} // closed by Close

	mu      sync.Mutex
	reading map[net.Conn]struct{} // connections whose header is being read
	closed  bool
	start   sync.Once
	wg      sync.WaitGroup // the accepting goroutine and the header reads
	reads   sync.WaitGroup // the header reads
}

// NewListener wraps inner; trusted says which peers send a header.
func NewListener(inner net.Listener, trusted func(netip.Addr) bool, timeout time.Duration, logger *slog.Logger) *Listener {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	l := &Listener{
		inner: inner, trusted: trusted, timeout: timeout, log: logger,
		ready: make(chan net.Conn), failed: make(chan struct{}), done: make(chan struct{}),
		reading: map[net.Conn]struct{}{},
	}
	return l
}

// loop accepts from the inner listener until it fails.
func (l *Listener) loop() {
	defer l.wg.Done()
	var delay time.Duration
	for {
		c, err := l.inner.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && !ne.Timeout() && isTemporary(err) {
				// Out of descriptors and the like: wait and try again.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				select {
				case <-time.After(delay):
					continue
				case <-l.done:
				}
			}
			// Connections whose header is being read go out first.
			l.reads.Wait()
			l.err = err
			close(l.failed)
			return
		}
		delay = 0
		ap, ok := AddrPortOf(c.RemoteAddr())
		if !ok || !l.trusted(ap.Addr()) {
			l.deliver(c)
			continue
		}
		if !l.track(c) {
			_ = c.Close()
			continue
		}
		l.wg.Add(1)
		l.reads.Add(1)
		go l.handshake(c)
	}
}

func isTemporary(err error) bool {
	t, ok := err.(interface{ Temporary() bool })
	return ok && t.Temporary()
}

// handshake reads c's header and hands c on; a connection whose header
// does not come in time, or is not one, is closed.
func (l *Listener) handshake(c net.Conn) {
	defer l.wg.Done()
	defer l.reads.Done()
	_ = c.SetReadDeadline(time.Now().Add(l.timeout))
	h, err := Read(c)
	_ = c.SetReadDeadline(time.Time{})
	if !l.untrack(c) {
		return // Close closed it
	}
	if err != nil {
		l.log.Debug("closing a connection from a trusted proxy without a PROXY header", "remote", c.RemoteAddr().String(), "error", err)
		_ = c.Close()
		return
	}
	if h.Local {
		l.deliver(c)
		return
	}
	l.deliver(&Conn{Conn: c, src: net.TCPAddrFromAddrPort(h.Source), dst: net.TCPAddrFromAddrPort(h.Destination)})
}

func (l *Listener) track(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.reading[c] = struct{}{}
	return true
}

func (l *Listener) untrack(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.reading[c]
	delete(l.reading, c)
	return ok
}

// deliver hands c to an Accept, or closes it once the listener is closed.
func (l *Listener) deliver(c net.Conn) {
	select {
	case l.ready <- c:
	case <-l.done:
		_ = c.Close()
	}
}

// Accept returns the next connection, its header read.
func (l *Listener) Accept() (net.Conn, error) {
	l.start.Do(func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if !l.closed {
			l.wg.Add(1)
			go l.loop()
		}
	})
	select {
	case c := <-l.ready:
		return c, nil
	case <-l.failed:
		// A connection whose header was read as the listener failed
		// still goes out first.
		select {
		case c := <-l.ready:
			return c, nil
		default:
		}
		return nil, l.err
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close closes the inner listener and the connections whose header is
// being read, and waits for the listener's goroutines.
func (l *Listener) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	for c := range l.reading {
		_ = c.Close()
	}
	clear(l.reading)
	l.mu.Unlock()
	close(l.done)
	err := l.inner.Close()
	l.wg.Wait()
	return err
}

// Addr is the inner listener's address.
func (l *Listener) Addr() net.Addr { return l.inner.Addr() }

// SetDeadline sets the inner listener's accept deadline, where it has one
// (a server stopping takes the connections queued until then).
func (l *Listener) SetDeadline(t time.Time) error {
	d, ok := l.inner.(interface{ SetDeadline(time.Time) error })
	if !ok {
		return errors.New("proxy protocol: the listener has no deadline")
	}
	return d.SetDeadline(t)
}

// Conn is a connection whose PROXY header named its client: RemoteAddr is
// the client, LocalAddr the address it connected to. Its header read,
// the socket beneath is the client's stream, so what the connection
// beneath offers (a half close, the raw socket for peeking) it offers too.
type Conn struct {
	net.Conn
	src, dst net.Addr
}

func (c *Conn) RemoteAddr() net.Addr { return c.src }
func (c *Conn) LocalAddr() net.Addr  { return c.dst }

// CloseWrite half-closes the connection beneath, when it can.
func (c *Conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.New("proxy protocol: the connection cannot half-close")
}

// SyscallConn is the raw socket beneath, when there is one.
func (c *Conn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errors.New("proxy protocol: no socket beneath")
}

var (
	_ interface{ CloseWrite() error } = (*Conn)(nil)
	_ syscall.Conn                    = (*Conn)(nil)
)

// NetConn is the connection from the load balancer.
func (c *Conn) NetConn() net.Conn { return c.Conn }
