package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"syscall"
	"time"

	"github.com/azimuthproxy/azimuth/internal/h1wire"
)

// h1Request is an HTTP/1.1 request serialized once per run. The generator
// writes these bytes on keep-alive connections and parses responses itself,
// so the hot loop allocates nothing per request: net/http's client costs
// several times more CPU per request, which would make the load tester the
// bottleneck of a fast target. The proxy's own client (internal/h1client)
// is no better here: it makes a request, a response and a header map per
// exchange, and hands uncommon heads to net/http; a generator that
// allocates gives its latencies the pauses of its own collector. What the
// two share is the wire: fields written and field lines scanned by
// internal/h1wire.
type h1Request struct {
	addr string      // host:port to dial
	tls  *tls.Config // nil for plain http
	head bool        // HEAD responses have no body
	wire []byte      // request line, headers, body
	// split is where a per-request ID header goes in wire (before the
	// blank line ending the headers); idHeader is its name, empty for none.
	split    int
	idHeader string
	expect   bool // the request asked for 100-continue
}

func newH1Request(o Options) (*h1Request, error) {
	u, err := url.Parse(o.URL)
	if err != nil {
		return nil, fmt.Errorf("parsing target url: %w", err)
	}
	r := &h1Request{addr: u.Host, head: o.Method == http.MethodHead}
	if u.Port() == "" {
		port := "80"
		if u.Scheme == "https" {
			port = "443"
		}
		r.addr = net.JoinHostPort(u.Hostname(), port)
	}
	if u.Scheme == "https" {
		r.tls = &tls.Config{InsecureSkipVerify: o.Insecure, ServerName: u.Hostname(), NextProtos: []string{"http/1.1"}} //nolint:gosec // an explicit operator choice
	}
	host := u.Host
	fields := http.Header{}
	for k, vs := range o.Header {
		ck := http.CanonicalHeaderKey(k)
		switch ck {
		case "Host":
			host = vs[0]
			continue
		case "Content-Length", "Transfer-Encoding", "Connection":
			return nil, fmt.Errorf("header %s is set by the generator", ck)
		case "Expect":
			r.expect = true
		}
		if !h1wire.IsToken(ck) {
			return nil, fmt.Errorf("header name %q is not a token", k)
		}
		fields[ck] = append(fields[ck], vs...)
	}
	fields["Host"] = []string{host}
	if _, ok := o.Header["User-Agent"]; !ok {
		fields["User-Agent"] = []string{"azload"}
	}
	if len(o.Body) > 0 || o.Method == http.MethodPost || o.Method == http.MethodPut || o.Method == http.MethodPatch {
		fields["Content-Length"] = []string{strconv.Itoa(len(o.Body))}
	}
	// The head is written once per run, as net/http would write its
	// fields: in the order of their names, each value on one line.
	var b bytes.Buffer
	bw := bufio.NewWriter(&b)
	fmt.Fprintf(bw, "%s %s HTTP/1.1\r\n", o.Method, u.RequestURI())
	h1wire.WriteFields(bw, fields, nil, nil, false)
	if err := bw.Flush(); err != nil {
		return nil, err
	}
	r.split, r.idHeader = b.Len(), http.CanonicalHeaderKey(o.IDHeader)
	b.WriteString("\r\n")
	b.Write(o.Body)
	r.wire = b.Bytes()
	return r, nil
}

// h1Conn is one worker's keep-alive connection and its parse state.
type h1Conn struct {
	req    *h1Request
	dialer net.Dialer
	c      net.Conn
	br     *bufio.Reader
	used   bool              // a response was read on c already
	wbuf   []byte            // the request with its ID, reused
	intern map[string]string // header values seen, so tallies need no allocation
}

func newH1Conn(req *h1Request, timeout time.Duration) *h1Conn {
	return &h1Conn{req: req, dialer: net.Dialer{Timeout: timeout}, intern: map[string]string{}}
}

func (h *h1Conn) close() {
	if h.c != nil {
		_ = h.c.Close()
		h.c = nil
	}
}

func (h *h1Conn) dial(ctx context.Context, deadline time.Time) error {
	c, err := h.dialer.DialContext(ctx, "tcp", h.req.addr)
	if err != nil {
		return fmt.Errorf("dialing %s: %w", h.req.addr, err)
	}
	if h.req.tls != nil {
		tc := tls.Client(c, h.req.tls)
		_ = tc.SetDeadline(deadline)
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = c.Close()
			return fmt.Errorf("tls handshake with %s: %w", h.req.addr, err)
		}
		c = tc
	}
	h.c, h.used = c, false
	if h.br == nil {
		h.br = bufio.NewReaderSize(c, 16<<10)
	} else {
		h.br.Reset(c)
	}
	return nil
}

// do sends req and reads the whole response by deadline. A connection the
// server closed while idle is redialed once, as browsers and net/http do,
// when nothing of the response was read. Every req of a run has the
// connection's address and TLS settings; only the method, body and
// framing differ, with a mix.
func (h *h1Conn) do(ctx context.Context, deadline time.Time, req *h1Request, id requestID, out *outcome) error {
	h.req = req
	wire := h.req.wire
	if h.req.idHeader != "" {
		b := append(h.wbuf[:0], wire[:h.req.split]...)
		b = append(b, h.req.idHeader...)
		b = append(b, ": "...)
		b = id.append(b)
		b = append(b, "\r\n"...)
		b = append(b, wire[h.req.split:]...)
		h.wbuf, wire = b, b
	}
	for attempt := 0; ; attempt++ {
		if h.c == nil {
			if err := h.dial(ctx, deadline); err != nil {
				return err
			}
		}
		reused := h.used
		err, started := h.exchange(deadline, wire, out)
		if err == nil {
			return nil
		}
		h.close()
		if reused && !started && attempt == 0 && idleClosed(err) {
			continue
		}
		return err
	}
}

func idleClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// exchange writes the request and parses the response; started reports
// whether any response byte arrived.
func (h *h1Conn) exchange(deadline time.Time, wire []byte, out *outcome) (err error, started bool) {
	if err := h.c.SetDeadline(deadline); err != nil {
		return err, false
	}
	if _, err := h.c.Write(wire); err != nil {
		return err, false
	}
	for {
		line, err := h.br.ReadSlice('\n')
		if err != nil {
			return err, len(line) > 0
		}
		if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
			return fmt.Errorf("malformed status line %q", line), true
		}
		code, ok := parseUint(line[9:12], 10)
		if !ok {
			return fmt.Errorf("malformed status line %q", line), true
		}
		length, chunked, closeAfter, err := h.headers(out)
		if err != nil {
			return err, true
		}
		if code >= 100 && code < 200 && code != 101 {
			continue // interim response; the final one follows
		}
		out.status = code
		if err := h.body(code, length, chunked, closeAfter); err != nil {
			return err, true
		}
		h.used = true
		if closeAfter {
			h.close()
		}
		return nil, true
	}
}

// headers reads the header block, keeping what framing and tallies need.
func (h *h1Conn) headers(out *outcome) (length int64, chunked, closeAfter bool, err error) {
	length = -1
	for {
		line, err := h.br.ReadSlice('\n')
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				return 0, false, false, errors.New("response header line too long")
			}
			return 0, false, false, err
		}
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			return length, chunked, closeAfter, nil
		}
		colon, vstart, vend, _, ok := h1wire.FieldLine(line, 0)
		if !ok {
			return 0, false, false, fmt.Errorf("malformed header line %q", line)
		}
		name, value := line[:colon], line[vstart:vend]
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			n, ok := parseUint(value, 10)
			if !ok {
				return 0, false, false, fmt.Errorf("malformed content-length %q", value)
			}
			length = int64(n)
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(value, []byte("chunked"))
		case bytes.EqualFold(name, []byte("Connection")):
			closeAfter = bytes.EqualFold(value, []byte("close"))
		case bytes.EqualFold(name, []byte("X-Backend")):
			out.backend = h.internString(value)
		case bytes.EqualFold(name, []byte("X-Backend-Zone")):
			out.zone = h.internString(value)
		}
	}
}

func (h *h1Conn) internString(b []byte) string {
	if s, ok := h.intern[string(b)]; ok {
		return s
	}
	if len(h.intern) > 4096 {
		return string(b) // a target inventing names; stop caching
	}
	s := string(b)
	h.intern[s] = s
	return s
}

// body reads and discards the response body as framed.
func (h *h1Conn) body(code int, length int64, chunked, closeAfter bool) error {
	switch {
	case h.req.head || code == http.StatusNoContent || code == http.StatusNotModified:
		return nil
	case chunked:
		return h.chunks()
	case length >= 0:
		_, err := h.br.Discard(int(length))
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return err
	default:
		// No framing: the body runs to the end of the connection.
		_, err := h.br.WriteTo(io.Discard)
		h.close()
		return err
	}
}

func (h *h1Conn) chunks() error {
	for {
		line, err := h.br.ReadSlice('\n')
		if err != nil {
			return unexpected(err)
		}
		line = bytes.TrimRight(line, "\r\n")
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			line = line[:i]
		}
		n, ok := parseUint(bytes.TrimSpace(line), 16)
		if !ok {
			return fmt.Errorf("malformed chunk size %q", line)
		}
		if n == 0 {
			// Trailers, then the empty line.
			for {
				t, err := h.br.ReadSlice('\n')
				if err != nil {
					return unexpected(err)
				}
				if len(bytes.TrimRight(t, "\r\n")) == 0 {
					return nil
				}
			}
		}
		if _, err := h.br.Discard(n + 2); err != nil {
			return unexpected(err)
		}
	}
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// parseUint parses a non-negative number in base 10 or 16 without the
// allocation strconv's error path costs; it rejects empty input and values
// past 2^53.
func parseUint(b []byte, base int) (int, bool) {
	if len(b) == 0 || len(b) > 13 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		var d int
		switch {
		case c >= '0' && c <= '9':
			d = int(c - '0')
		case base == 16 && c >= 'a' && c <= 'f':
			d = int(c-'a') + 10
		case base == 16 && c >= 'A' && c <= 'F':
			d = int(c-'A') + 10
		default:
			return 0, false
		}
		n = n*base + d
	}
	return n, true
}
