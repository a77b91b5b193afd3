package proxy

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/azimuthproxy/azimuth/internal/fastpath"
	"github.com/azimuthproxy/azimuth/internal/h1wire"
	"golang.org/x/net/http/httpguts"
)

// forward sends the client's request through the attempt loop and writes
// what comes back to the client. Nothing reaches the client before the
// loop returns, so a retry can never follow a partial response.
//
// The proxy forwards by itself rather than through httputil.ReverseProxy,
// which cloned the request (its header map and URL), wrapped the context
// twice, copied response headers one value at a time and parsed every
// response's Content-Type: a third of the allocations of a request. Here
// the outbound request is made once, shares the client's header map after
// hop-by-hop and forwarding headers are cleaned from it (net/http lets a
// handler change its request's headers), and an attempt adds only its
// lifetime and, on a retry, a copy of the request and its URL.
func (s *Server) forward(x *exchange, in *http.Request) {
	out, err := x.outbound(in)
	if err != nil {
		plain(&x.rec, http.StatusBadRequest, "bad upgrade\n", false)
		return
	}
	if x.backupFor != nil {
		markCrossing(out)
	}
	resp, err := s.attempts(x, out)
	if err != nil && x.crossable(err) {
		// The pool's own attempts found no answer: its backup pool (the
		// other region) gets the request, once.
		x.crossTo(backupNoAnswer)
		out = crossingCopy(x, out)
		x.race = race{}
		resp, err = s.attempts(x, out)
	}
	if err != nil {
		if berr := x.body.readError(); berr != nil {
			// The client's streaming body broke the attempt: the answer
			// is about the body, not the backend.
			var tooBig *http.MaxBytesError
			if errors.As(berr, &tooBig) {
				plain(&x.rec, http.StatusRequestEntityTooLarge, "request body too large\n", false)
				return
			}
			x.final = CauseClientGone
			plain(&x.rec, http.StatusBadRequest, "request body incomplete\n", false)
			return
		}
		s.answerError(&x.rec, in, err)
		return
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		s.tunnel(x, out, resp)
		return
	}
	s.respond(x, resp)
}

// errBadUpgrade refuses a request asking to switch to a protocol whose
// name is not printable ASCII.
var errBadUpgrade = errors.New("upgrade to a protocol with a name that is not printable")

// outbound makes the request the attempts send: the client's, with its
// header map cleaned in place (RFC 9110 section 7.6.1 hop-by-hop fields,
// fields named in Connection, forwarding fields the client may not set,
// see forwarding, and the client-subject field in any spelling, '_' for
// '-' included) and the proxy's own forwarding fields added. The
// Host stays the client's. Forwarding fields from a trusted proxy are
// kept, and X-Forwarded-For gets the client's address appended.
func (x *exchange) outbound(in *http.Request) (*http.Request, error) {
	h := in.Header
	if h == nil {
		h = http.Header{}
	}
	up := upgradeType(h)
	if !h1wire.PrintableASCII(up) {
		return nil, errBadUpgrade
	}
	if strings.EqualFold(up, "h2c") {
		// An h2c upgrade would open an HTTP/2 connection from the client
		// straight to the backend, its later streams past the proxy's
		// routing and header rules: the request goes on without it.
		up = ""
	}
	teTrailers := httpguts.HeaderValuesContainsToken(h["Te"], "trailers")
	trusted := x.listener.trusted(in.RemoteAddr)
	var priorFor, priorHost, priorProto []string
	if trusted {
		priorFor, priorHost, priorProto = h["X-Forwarded-For"], h["X-Forwarded-Host"], h["X-Forwarded-Proto"]
	}

	removeHopByHop(h)
	delete(h, RegionHopHeader) // set again only when the request crosses regions
	subject := x.listener.subjectLower
	for name := range h {
		if forwarding(name) && (!trusted || strings.ContainsRune(name, '_') || replacedForwarding(name)) ||
			subject != "" && equalFold(name, subject) {
			delete(h, name)
		}
	}
	if teTrailers {
		// Backends that care may send trailers: the proxy passes them on.
		h["Te"] = []string{"trailers"}
	}
	if up != "" {
		h["Connection"] = []string{"Upgrade"}
		h["Upgrade"] = []string{up}
	}
	// The request, its URL and the fields the proxy sets are one
	// allocation; the fields share one array, a slice of one each.
	o := new(outboundRequest)
	v := &o.fields
	one := func(i int, s string) []string { v[i] = s; return v[i : i+1 : i+1] }
	if ip := clientIP(in.RemoteAddr); ip != "" {
		if len(priorFor) > 0 {
			ip = strings.Join(priorFor, ", ") + ", " + ip
		}
		h["X-Forwarded-For"] = one(0, ip)
	}
	if len(priorHost) > 0 {
		h["X-Forwarded-Host"] = priorHost
	} else {
		h["X-Forwarded-Host"] = one(1, in.Host)
	}
	switch {
	case len(priorProto) > 0:
		h["X-Forwarded-Proto"] = priorProto
	case in.TLS != nil:
		h["X-Forwarded-Proto"] = one(2, "https")
	default:
		h["X-Forwarded-Proto"] = one(2, "http")
	}
	h["X-Request-Id"] = one(3, x.id)
	if name := x.listener.ClientSubjectHeader; name != "" {
		// The client's own, in any spelling, went above.
		if f := x.listener.ClientSubject; f != nil {
			if s := f(in); s != "" {
				h.Set(name, s)
			}
		}
	}
	if _, ok := h["User-Agent"]; !ok {
		// An empty value keeps the transport from adding its own.
		h["User-Agent"] = noUserAgent
	}
	if rr := x.route; rr != nil {
		// After the hygiene above: the rules cannot name a hop-by-hop or
		// forwarding field (validation refuses them).
		rr.req.apply(h)
	}

	o.req, o.url = *in, *in.URL
	r := &o.req
	r.URL = &o.url
	r.URL.Scheme = x.pool.Scheme
	r.URL.RawQuery = cleanQuery(r.URL.RawQuery)
	r.Header = h
	r.RequestURI = ""
	r.Close = false
	r.Body = x.body.reader()
	if r.Body == nil {
		r.ContentLength = 0
	}
	if rr := x.route; rr != nil {
		rr.rewrite(r)
	}
	return r, nil
}

// noUserAgent is shared by every request without one: its capacity is its
// length, so an append never writes into it.
var noUserAgent = []string{""}

// outboundRequest holds a request, its URL and the values of the fields
// the proxy sets in one allocation.
type outboundRequest struct {
	req    http.Request
	url    url.URL
	fields [4]string
}

// copyOutbound is a copy of out with a URL of its own, in one allocation:
// what a later attempt sends while an earlier one's transport may still
// read out.
func copyOutbound(out *http.Request) *http.Request {
	o := &outboundRequest{req: *out, url: *out.URL}
	o.req.URL = &o.url
	return &o.req
}

// replacedForwarding reports the forwarding fields the proxy always sets
// itself (from a trusted proxy's values where it has them).
func replacedForwarding(name string) bool {
	switch name {
	case "Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto":
		return true
	}
	return false
}

// clientIP is the host part of a RemoteAddr, or "" when it has none.
func clientIP(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		return ""
	}
	return host
}

// hopByHopFields are the fields that describe one connection, not the message
// (RFC 9110 section 7.6.1), with the older names still sent in the wild
// (Proxy-Connection, Keep-Alive) and the proxy authentication fields,
// which are meant for this proxy, not the next.
var hopByHopFields = [...]string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// removeHopByHop deletes hop-by-hop fields and the fields Connection names.
func removeHopByHop(h http.Header) {
	for _, v := range h["Connection"] {
		for len(v) > 0 {
			var name string
			name, v, _ = strings.Cut(v, ",")
			if name = textproto.TrimString(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, name := range hopByHopFields {
		delete(h, name)
	}
}

// upgradeType is the protocol a message asks to switch to, or "".
func upgradeType(h http.Header) string {
	if !httpguts.HeaderValuesContainsToken(h["Connection"], "Upgrade") {
		return ""
	}
	return h.Get("Upgrade")
}

// maxQueryParams is net/url's bound on the parameters of a query.
const maxQueryParams = 10000

// cleanQuery returns the query unchanged when every parameter parses, and
// otherwise only the parameters that do, encoded again. A query with a
// ';' or a bad escape is read differently by different servers, a way to
// smuggle a parameter past the proxy's view of the request; net/url
// refuses both.
func cleanQuery(q string) string {
	clean := strings.Count(q, "&") < maxQueryParams
	for i := 0; clean && i < len(q); i++ {
		switch q[i] {
		case ';':
			clean = false
		case '%':
			if i+2 >= len(q) || !isHex(q[i+1]) || !isHex(q[i+2]) {
				clean = false
			}
			i += 2
		}
	}
	if clean {
		return q
	}
	v, _ := url.ParseQuery(q)
	return v.Encode()
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// respond writes a backend's response to the client: its header without
// hop-by-hop fields and Alt-Svc (a backend's Alt-Svc would advertise its
// protocols as the proxy's; the listener sets its own), the body as it
// comes (see releasingBody.Read), and its trailers. A body that breaks
// after it began aborts the client's connection (http.ErrAbortHandler), so
// the client sees a failure, never a short body passed off as whole. A
// response writer that adopts a header map (fastpath.HeaderAdopter, the
// HTTP/1.1 server's) takes the backend's as it is, when nothing was set
// on the client's yet; any other gets a copy.
func (s *Server) respond(x *exchange, resp *http.Response) {
	h := resp.Header
	removeHopByHop(h)
	delete(h, "Alt-Svc")
	if rr := x.route; rr != nil {
		rr.resp.apply(h)
	}
	dst := h
	a, ok := x.rec.ResponseWriter.(fastpath.HeaderAdopter)
	adopted := ok && a.AdoptHeader(h)
	took(pathAdopt, adopted)
	if !adopted {
		dst = x.rec.Header()
		addHeader(dst, h)
	}
	announced := len(resp.Trailer)
	if announced > 0 {
		names := make([]string, 0, announced)
		for name := range resp.Trailer {
			names = append(names, name)
		}
		dst.Add("Trailer", strings.Join(names, ", "))
	}
	x.rec.WriteHeader(resp.StatusCode)
	if eventStream(h) || resp.ContentLength < 0 && x.respBody.waiting() {
		// A stream's head goes out at once when its first bytes are not
		// there yet (a long poll, an event stream), so the client knows
		// the answer began. An HTTP/2 backend's body cannot tell, and its
		// head waits for the first bytes or the end: a gRPC answer with
		// trailers only stays one HEADERS frame.
		x.rec.Flush()
	}

	rerr, werr := copyBody(&x.rec, resp.Body)
	_ = resp.Body.Close() // before the trailers: closing reads them
	if rerr != nil || werr != nil {
		if rerr != nil && x.ctx.Err() == nil { // a client that left is not the backend's fault
			s.logger.Warn("backend response body broke", "request_id", x.id, "err", rerr)
		}
		panic(http.ErrAbortHandler)
	}
	if len(resp.Trailer) == 0 {
		return
	}
	// Trailers go out only after a chunked body: flushing forces chunking
	// where the server would otherwise count a short body's length.
	x.rec.Flush()
	if len(resp.Trailer) == announced {
		addHeader(dst, resp.Trailer)
		return
	}
	for name, vs := range resp.Trailer {
		for _, v := range vs {
			dst.Add(http.TrailerPrefix+name, v)
		}
	}
}

// addHeader adds src's fields to dst. A field dst does not have takes
// src's slice as it is: src is the backend's response, read only here.
func addHeader(dst, src http.Header) {
	for name, vs := range src {
		if prev, ok := dst[name]; ok {
			dst[name] = append(prev[:len(prev):len(prev)], vs...)
		} else {
			dst[name] = vs
		}
	}
}

// eventStream reports a text/event-stream response (server-sent events).
func eventStream(h http.Header) bool {
	ct := h["Content-Type"]
	if len(ct) == 0 {
		return false
	}
	mt, _, _ := strings.Cut(ct[0], ";")
	return strings.EqualFold(strings.TrimSpace(mt), "text/event-stream")
}

// copyBody copies a response body to the client through a pooled buffer.
// It returns the error of the read or of the write that ended it early.
func copyBody(w io.Writer, r io.Reader) (rerr, werr error) {
	bp := copyPool.Get().(*[]byte)
	defer copyPool.Put(bp)
	buf := *bp
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if _, werr = w.Write(buf[:n]); werr != nil {
				return nil, werr
			}
		}
		if err == io.EOF {
			return nil, nil
		}
		if err != nil {
			return err, nil
		}
	}
}

// tunnel finishes a protocol switch (WebSocket): the backend's 101 goes to
// the client, and then bytes are copied both ways until one side closes.
// The attempt's lease is held until then, so an open tunnel counts as a
// request in flight on its backend.
func (s *Server) tunnel(x *exchange, out *http.Request, resp *http.Response) {
	fail := func(msg string) {
		_ = resp.Body.Close()
		s.logger.Warn("protocol switch failed", "request_id", x.id, "err", msg)
		plain(&x.rec, http.StatusBadGateway, "backend failed\n", false)
	}
	// Only to the protocol the client asked for: a 101 to a request that
	// asked for none would hand the client's connection to the backend
	// as a raw pipe, and the client's next request would reach the
	// backend without passing the proxy.
	want, got := upgradeType(out.Header), upgradeType(resp.Header)
	if want == "" || !h1wire.PrintableASCII(got) || !strings.EqualFold(want, got) {
		fail("backend switched to " + strconv.Quote(got) + ", not the requested " + strconv.Quote(want))
		return
	}
	backend, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		fail("101 response without a writable connection")
		return
	}
	client, brw, err := http.NewResponseController(&x.rec).Hijack()
	if err != nil {
		fail("taking over the client connection: " + err.Error())
		return
	}
	defer client.Close()
	defer backend.Close()

	delete(resp.Header, "Alt-Svc")
	addHeader(x.rec.Header(), resp.Header)
	resp.Header = x.rec.Header()
	resp.Body = nil // Write sends the head only
	if err := resp.Write(brw); err != nil {
		return
	}
	if err := brw.Flush(); err != nil {
		return
	}
	x.rec.status = http.StatusSwitchingProtocols

	// Each direction ends at its source's end of stream or at an error;
	// the first to end without a half-close to pass on ends both (the
	// deferred closes), and the second is waited for before returning.
	done := make(chan bool, 2)
	go func() { done <- pipe(client, backend) }()
	go func() { done <- pipe(backend, brw.Reader) }()
	if <-done {
		<-done
		return
	}
	_ = backend.Close()
	_ = client.Close()
	<-done
}

// pipe copies src to dst, then passes the end of stream on as a
// half-close where dst has one. It reports whether it did.
func pipe(dst io.Writer, src io.Reader) bool {
	if _, err := io.Copy(dst, src); err != nil {
		return false
	}
	cw, ok := dst.(interface{ CloseWrite() error })
	return ok && cw.CloseWrite() == nil
}

// informationalHook passes a backend's 1xx responses to the client for
// transports that report them from a goroutine of their own (net/http's
// HTTP/2 transport): after its attempt ended it forwards nothing, so it
// never touches the client's header map while the final answer is written.
type informationalHook struct {
	mu    sync.Mutex
	ended bool
	x     *exchange
}

func (h *informationalHook) got(code int, header textproto.MIMEHeader) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ended {
		return nil
	}
	return h.x.informational(code, header)
}

func (h *informationalHook) end() {
	h.mu.Lock()
	h.ended = true
	h.mu.Unlock()
}

// informational forwards one 1xx response to the client. The header map
// is cleared after it, since a 1xx head does not clear it by itself.
func (x *exchange) informational(code int, header textproto.MIMEHeader) error {
	dst := x.rec.Header()
	addHeader(dst, http.Header(header))
	x.rec.WriteHeader(code)
	clear(dst)
	return nil
}
