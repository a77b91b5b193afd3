package main

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/internal/testwait"
)

// corpusCase is one hostile input, sent byte for byte on a fresh connection
// to each listener, with what the product promises for it.
type corpusCase struct {
	name   string
	req    string
	status []int // the answers, in order
	closed bool  // the proxy closes the connection after the last answer
	whole  int   // requests each listener forwards whole to the backend
	// closeWrite has the client close its side after the bytes, so that
	// what follows the last whole request is all there is; the
	// connection is then not probed.
	closeWrite bool
	// check inspects what the plain listener forwarded (the TLS
	// listener's is compared to it).
	check func(t *testing.T, seen []hostileSeen)
}

const corpusHello = "5\r\nhello\r\n0\r\n\r\n"

// corpusCases are the hostile heads: the refusals of internal/h1server
// (strictLines, checkHead, net/http's reader) and the framing rules of
// proxy/handler.go.
var corpusCases = []corpusCase{
	// Line folding and bare CR (RFC 9112 sections 2.2 and 5.2).
	{name: "obs-fold in a field", req: "GET /a HTTP/1.1\r\nHost: a.test\r\nX-Folded: one\r\n two\r\n\r\n", status: []int{400}, closed: true},
	{name: "obs-fold with a tab", req: "GET /a HTTP/1.1\r\nHost: a.test\r\nX-Folded: one\r\n\ttwo\r\n\r\n", status: []int{400}, closed: true},
	{name: "obs-fold in host", req: "GET /a HTTP/1.1\r\nHost: a.test\r\n evil.example\r\n\r\n", status: []int{400}, closed: true},
	{name: "bare CR inside a value", req: "GET /a HTTP/1.1\r\nHost: a.test\r\nX-A: one\rX-B: two\r\n\r\n", status: []int{400}, closed: true},
	{name: "bare CR alone on a line", req: "GET /a HTTP/1.1\r\nHost: a.test\r\n\r\r\nX-B: two\r\n\r\n", status: []int{400}, closed: true},
	// Field names.
	{name: "space before a colon", req: "GET /a HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding : chunked\r\n\r\n", status: []int{400}, closed: true},
	{name: "tab before a colon", req: "GET /a HTTP/1.1\r\nHost: a.test\r\nX-A\t: 1\r\n\r\n", status: []int{400}, closed: true},
	{name: "space in a field name", req: "GET /a HTTP/1.1\r\nHost: a.test\r\nX Bad: 1\r\n\r\n", status: []int{400}, closed: true},
	{name: "field without a colon", req: "GET /a HTTP/1.1\r\nHost: a.test\r\nX-Bad\r\n\r\n", status: []int{400}, closed: true},
	// Host (RFC 9112 section 3.2).
	{name: "two equal hosts", req: "GET /a HTTP/1.1\r\nHost: a.test\r\nHost: a.test\r\n\r\n", status: []int{400}, closed: true},
	{name: "two differing hosts", req: "GET /a HTTP/1.1\r\nHost: a.test\r\nHost: evil.example\r\n\r\n", status: []int{400}, closed: true},
	{name: "no host", req: "GET /a HTTP/1.1\r\n\r\n", status: []int{400}, closed: true},
	{name: "absolute form disagrees with host", req: "GET http://evil.example/a HTTP/1.1\r\nHost: a.test\r\n\r\n", status: []int{400}, closed: true},
	{
		name: "absolute form agrees with host", req: "GET http://a.test/a?q=1 HTTP/1.1\r\nHost: a.test\r\n\r\n", status: []int{200}, whole: 1,
		check: func(t *testing.T, seen []hostileSeen) {
			if line, _, _ := strings.Cut(seen[0].raw, "\r\n"); line != "GET /a?q=1 HTTP/1.1" {
				t.Errorf("backend request line %q, want origin form", line)
			}
			if host := seen[0].header.Get("X-Forwarded-Host"); !strings.Contains(seen[0].raw, "\r\nHost: a.test\r\n") || host != "a.test" {
				t.Errorf("backend got another host than a.test (X-Forwarded-Host %q):\n%s", host, seen[0].raw)
			}
		},
	},
	// Content-Length and Transfer-Encoding (RFC 9112 section 6).
	{
		name: "content-length with chunked: re-framed, closed, nothing smuggled",
		req: "POST /a HTTP/1.1\r\nHost: a.test\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n" +
			corpusHello + "GET /smuggled HTTP/1.1\r\nHost: a.test\r\n\r\n",
		status: []int{200}, closed: true, whole: 1,
		check: func(t *testing.T, seen []hostileSeen) {
			raw := strings.ToLower(seen[0].raw)
			if hasCL, hasTE := strings.Contains(raw, "\r\ncontent-length:"), strings.Contains(raw, "\r\ntransfer-encoding:"); hasCL == hasTE {
				t.Errorf("backend got ambiguous framing (content-length %v, transfer-encoding %v):\n%s", hasCL, hasTE, seen[0].raw)
			}
			if seen[0].body != "hello" {
				t.Errorf("backend body %q, want hello", seen[0].body)
			}
		},
	},
	{name: "two differing content-lengths", req: "POST /a HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", status: []int{400}, closed: true},
	{name: "content-length with a plus sign", req: "POST /a HTTP/1.1\r\nHost: a.test\r\nContent-Length: +5\r\n\r\nhello", status: []int{400}, closed: true},
	{name: "content-length with a minus sign", req: "POST /a HTTP/1.1\r\nHost: a.test\r\nContent-Length: -5\r\n\r\nhello", status: []int{400}, closed: true},
	{name: "content-length in hex", req: "POST /a HTTP/1.1\r\nHost: a.test\r\nContent-Length: 0x5\r\n\r\nhello", status: []int{400}, closed: true},
	{name: "two transfer-encodings", req: "POST /a HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n" + corpusHello, status: []int{501}, closed: true},
	{name: "chunked plus identity", req: "POST /a HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked, identity\r\n\r\n" + corpusHello, status: []int{501}, closed: true},
	{name: "unknown coding", req: "POST /a HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n" + corpusHello, status: []int{501}, closed: true},
	{name: "bad chunk size", req: "POST /a HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", status: []int{400}, closed: true},
	{name: "bad chunk size, buffered body", req: "PUT /a HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", status: []int{400}, closed: true},
	{name: "chunk extensions", req: "POST /a HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1;q=\"x\"\r\nhello\r\n0;last\r\n\r\n", status: []int{200}, closed: true, whole: 1, check: corpusBodyHello},
	{name: "chunked body with LF-only line ends", req: "POST /a HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\n", status: []int{400}, closed: true},
	// The request line (RFC 9112 section 3).
	{name: "two spaces after the method", req: "GET  /a HTTP/1.1\r\nHost: a.test\r\n\r\n", status: []int{400}, closed: true},
	{name: "extra word after the version", req: "GET /a HTTP/1.1 extra\r\nHost: a.test\r\n\r\n", status: []int{400}, closed: true},
	{name: "space after the version", req: "GET /a HTTP/1.1 \r\nHost: a.test\r\n\r\n", status: []int{400}, closed: true},
	{name: "no version", req: "GET /a\r\nHost: a.test\r\n\r\n", status: []int{400}, closed: true},
	{name: "HTTP/2.0 in the request line", req: "GET /a HTTP/2.0\r\nHost: a.test\r\n\r\n", status: []int{505}, closed: true},
	{name: "HTTP/0.9 in the request line", req: "GET /a HTTP/0.9\r\nHost: a.test\r\n\r\n", status: []int{505}, closed: true},
	{name: "bad method byte", req: "G@T /a HTTP/1.1\r\nHost: a.test\r\n\r\n", status: []int{400}, closed: true},
	{name: "NUL in the target", req: "GET /a\x00b HTTP/1.1\r\nHost: a.test\r\n\r\n", status: []int{400}, closed: true},
	{name: "control byte in the target", req: "GET /a\x01b HTTP/1.1\r\nHost: a.test\r\n\r\n", status: []int{400}, closed: true},
	{name: "DEL in the target", req: "GET /a\x7fb HTTP/1.1\r\nHost: a.test\r\n\r\n", status: []int{400}, closed: true},
	{name: "NUL in a value", req: "GET /a HTTP/1.1\r\nHost: a.test\r\nX-Bad: a\x00b\r\n\r\n", status: []int{400}, closed: true},
	{name: "control byte in a value", req: "GET /a HTTP/1.1\r\nHost: a.test\r\nX-Bad: a\x01b\r\n\r\n", status: []int{400}, closed: true},
	{name: "DEL in a value", req: "GET /a HTTP/1.1\r\nHost: a.test\r\nX-Bad: a\x7fb\r\n\r\n", status: []int{400}, closed: true},
	{name: "NUL in host", req: "GET /a HTTP/1.1\r\nHost: a.te\x00st\r\n\r\n", status: []int{400}, closed: true},
	// Size and the connection's framing.
	{name: "header block over the limit", req: "GET /a HTTP/1.1\r\nHost: a.test\r\nX-Big: " + strings.Repeat("b", 80<<10) + "\r\n\r\n", status: []int{431}, closed: true},
	{name: "pipelined second request", req: "GET /a HTTP/1.1\r\nHost: a.test\r\n\r\nGET /b HTTP/1.1\r\nHost: a.test\r\n\r\n", status: []int{200, 200}, whole: 2},
	{name: "refused pipelined second request", req: "GET /a HTTP/1.1\r\nHost: a.test\r\n\r\nGET /b HTTP/1.1\r\nHost: a.test\r\nX-Folded: one\r\n two\r\n\r\n", status: []int{200, 400}, closed: true, whole: 1},
	{name: "CRLF before the request line", req: "\r\nGET /a HTTP/1.1\r\nHost: a.test\r\n\r\n", status: []int{400}, closed: true},
	{name: "head ends with LF LF", req: "GET /a HTTP/1.1\r\nHost: a.test\n\n", status: []int{200}, whole: 1, check: corpusNoBareLF},
	{name: "LF line ends throughout", req: "GET /a HTTP/1.1\nHost: a.test\nX-A: 1\n\n", status: []int{200}, whole: 1, check: corpusNoBareLF},
}

// corpusSeeds are FuzzSameAnswersAsNetHTTP's seeds (internal/h1server/
// fuzz_test.go), byte for byte, with what the proxy answers to each.
var corpusSeeds = []corpusCase{
	{name: "seed: one request", req: "GET / HTTP/1.1\r\nHost: a\r\n\r\n", status: []int{200}, whole: 1},
	{name: "seed: two pipelined", req: "GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: b\r\n\r\n", status: []int{200, 200}, whole: 2},
	{name: "seed: HTTP/1.0", req: "GET / HTTP/1.0\r\n\r\n", status: []int{200}, closed: true, whole: 1},
	{name: "seed: HTTP/1.0 keep-alive, then one more", req: "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.0\r\n\r\n", status: []int{200, 200}, closed: true, whole: 2},
	{name: "seed: content-length body, then a request", req: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\nHost: a\r\n\r\n", status: []int{200, 200}, whole: 2},
	{name: "seed: chunked", req: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", status: []int{200}, closed: true, whole: 1},
	{name: "seed: chunked and content-length", req: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n3\r\nabc\r\n0\r\n\r\n", status: []int{200}, closed: true, whole: 1},
	{name: "seed: chunked, identity", req: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", status: []int{501}, closed: true},
	{name: "seed: two content-lengths", req: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", status: []int{400}, closed: true},
	{name: "seed: content-length +3", req: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\nabc", status: []int{400}, closed: true},
	{name: "seed: two hosts", req: "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", status: []int{400}, closed: true},
	{name: "seed: empty host", req: "GET / HTTP/1.1\r\nHost:\r\n\r\n", status: []int{200}, whole: 1},
	{name: "seed: absolute form, other host", req: "GET http://x/ HTTP/1.1\r\nHost: y\r\n\r\n", status: []int{400}, closed: true},
	{name: "seed: space before the colon of host", req: "GET / HTTP/1.1\r\nhost : a\r\n\r\n", status: []int{400}, closed: true},
	{name: "seed: folded host", req: "GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", status: []int{400}, closed: true},
	{name: "seed: LF line ends", req: "GET / HTTP/1.1\nHost: a\n\n", status: []int{200}, whole: 1},
	{name: "seed: CRLF after a POST body, then a request", req: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\na\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", status: []int{200, 200}, whole: 2},
	{name: "seed: expect 100-continue without a body", req: "GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n", status: []int{200}, whole: 1},
	// The proxy opens no tunnel: CONNECT is refused, never forwarded.
	{name: "seed: CONNECT", req: "CONNECT a:443 HTTP/1.1\r\n\r\n", status: []int{501}, closed: true},
	{name: "seed: OPTIONS *", req: "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", status: []int{200}},
	{name: "seed: connection close, then a request", req: "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", status: []int{200}, closed: true, whole: 1},
	{name: "seed: NUL in the target", req: "GET /\x00 HTTP/1.1\r\nHost: a\r\n\r\n", status: []int{400}, closed: true},
}

// corpusFound are the inputs the fuzzer found
// (internal/h1server/testdata/fuzz/FuzzSameAnswersAsNetHTTP). The client
// closes its side after them, as the fuzzer's harness does: several end
// with the start of a request that never finishes.
var corpusFound = []corpusCase{
	{name: "found: empty host, then a CR and three bytes", req: "POST * HTTP/1.1\nHost:\n\n\r000", status: []int{200, 400}, closed: true, whole: 1, closeWrite: true},
	{name: "found: folded empty host", req: "0 * HTTP/1.1\nHost:\n 0000000000000000000000000\n\r\n", status: []int{400}, closed: true, closeWrite: true},
	{name: "found: HTTP/1.0 loose keep-alive, then four bytes", req: "0 * HTTP/1.0\nConneCtion:0 keep-Alive\n\n0000", status: []int{200, 400}, closed: true, whole: 1, closeWrite: true},
	{name: "found: empty host, then one byte", req: "0 * HTTP/1.1\nHost:\n\n0", status: []int{200}, closed: true, whole: 1, closeWrite: true},
	{name: "found: host of a fold of spaces", req: "000 * HTTP/1.0\r\nHost:000\n  \n\r\n", status: []int{400}, closed: true, closeWrite: true},
}

func corpusBodyHello(t *testing.T, seen []hostileSeen) {
	if seen[0].body != "hello" {
		t.Errorf("backend body %q, want hello", seen[0].body)
	}
}

func corpusNoBareLF(t *testing.T, seen []hostileSeen) {
	if strings.Contains(strings.ReplaceAll(seen[0].raw, "\r\n", ""), "\n") {
		t.Errorf("backend got a bare LF:\n%q", seen[0].raw)
	}
}

// corpusProbe asks, after a case's answers, whether the connection is
// still served: the server answers OPTIONS * itself (200, no body, nothing
// forwarded), and a closed connection reads its end at once, so no read
// waits out a timeout.
const corpusProbe = "OPTIONS * HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n"

// corpusRig is one azimuth with a plain listener and a TLS listener
// (HTTP/1.1 by ALPN) that route everything to one recorder.
type corpusRig struct {
	admin string
	rec   *hostileRecorder
	lns   [2]corpusListener
}

// corpusListener is one listener, and how a client reaches it from a
// given loopback address.
type corpusListener struct {
	name  string
	proto string // the X-Forwarded-Proto the backend must see
	dial  func(t *testing.T, from net.IP) net.Conn
}

func corpusStart(t *testing.T) *corpusRig {
	t.Helper()
	dir := t.TempDir()
	ca := tlsproxyNewCA(t, "edge CA")
	tlsproxyWriteLeaf(t, ca, dir)
	r := &corpusRig{rec: hostileStartRecorder(t)}
	path := filepath.Join(dir, "azimuth.yaml")
	reloadWrite(t, path, fmt.Sprintf(`zone: zone-a
admin: { address: 127.0.0.1:0 }
log: { level: info, access_log: { output: "off" } }
shutdown: { drain_delay: 50ms, grace: 2s }
listeners:
  - name: http
    address: 127.0.0.2:0
    routes: [ { pool: rec } ]
  - name: https
    # Not 127.0.0.2:0 again: the process keys its listeners by the
    # configured address, so a second listener on the same host:0 would
    # replace the first (validation lets port 0 repeat).
    address: 127.0.0.3:0
    tls:
      certificates: [ { cert_file: a.pem, key_file: a-key.pem } ]
    routes: [ { pool: rec } ]
pools:
  - name: rec
    backends: [ { address: %s, zone: zone-a } ]
`, r.rec.addr))
	p, admin := reloadStart(t, path)
	r.admin = admin
	// The process's log tells why a listener answered as it did.
	t.Cleanup(func() {
		if t.Failed() {
			p.mu.Lock()
			for _, l := range p.logs {
				t.Log(l)
			}
			p.mu.Unlock()
		}
	})
	plainAddr, tlsAddr := reloadListenerAddr(t, r.admin, "http"), reloadListenerAddr(t, r.admin, "https")
	dialer := func(from net.IP) *net.Dialer {
		return &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: from}}
	}
	r.lns[0] = corpusListener{name: "plain", proto: "http", dial: func(t *testing.T, from net.IP) net.Conn {
		c, err := dialer(from).Dial("tcp", plainAddr)
		if err != nil {
			t.Fatalf("dialing the plain listener from %s: %v", from, err)
		}
		return c
	}}
	r.lns[1] = corpusListener{name: "TLS", proto: "https", dial: func(t *testing.T, from net.IP) net.Conn {
		cfg := &tls.Config{RootCAs: ca.pool, ServerName: "a.test", NextProtos: []string{"http/1.1"}}
		c, err := tls.DialWithDialer(dialer(from), "tcp", tlsAddr, cfg)
		if err != nil {
			t.Fatalf("dialing the TLS listener from %s: %v", from, err)
		}
		if p := c.ConnectionState().NegotiatedProtocol; p != "http/1.1" {
			t.Fatalf("negotiated %q, want http/1.1", p)
		}
		return c
	}}
	return r
}

// corpusClientIP is the loopback address case i is sent from to listener
// j: the backend tells the requests of each apart by X-Forwarded-For,
// even one that reaches it after the case ended.
func corpusClientIP(j, i int) net.IP { return net.IPv4(127, 77, byte(j), byte(i+1)) }

// from returns what the backend got from a client address, in order.
func (r *corpusRig) from(ip net.IP) []hostileSeen {
	var out []hostileSeen
	for _, s := range r.rec.requests() {
		if s.header.Get("X-Forwarded-For") == ip.String() {
			out = append(out, s)
		}
	}
	return out
}

// corpusResult is what a client got back for one case.
type corpusResult struct {
	codes   []int
	answers []string // each answer's status line and body, in order
	after   string   // "closed", "open", or the unexpected answer that came next
}

func (a corpusResult) String() string {
	return fmt.Sprintf("%q then %s", a.answers, a.after)
}

// corpusSend writes tc's bytes on c, reads as many answers as tc
// expects (fewer if the connection ends) and then finds out whether the
// connection is still served: with the probe, or, when the client closed
// its side, by reading what follows.
func corpusSend(c net.Conn, tc corpusCase) corpusResult {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		_, _ = io.WriteString(c, tc.req) // the server may refuse before reading it all
		if tc.closeWrite {
			_ = c.(interface{ CloseWrite() error }).CloseWrite()
		}
	}()
	defer func() { <-wrote }()
	br := bufio.NewReader(c)
	res := corpusResult{after: "closed"}
	for range tc.status {
		code, answer, ok := corpusRead(br)
		if !ok {
			return res
		}
		res.codes, res.answers = append(res.codes, code), append(res.answers, answer)
	}
	if !tc.closeWrite {
		<-wrote
		if _, err := io.WriteString(c, corpusProbe); err != nil {
			return res
		}
	}
	code, answer, ok := corpusRead(br)
	switch {
	case !ok:
	case !tc.closeWrite && code == 200 && strings.HasSuffix(answer, ` ""`):
		res.after = "open"
	default:
		res.after = "another answer, " + answer
	}
	return res
}

// corpusRead reads one answer: its status code, and its status line and
// body as one string.
func corpusRead(br *bufio.Reader) (int, string, bool) {
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return 0, "", false
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, fmt.Sprintf("%s %s, body broken after %q", resp.Proto, resp.Status, body), true
	}
	return resp.StatusCode, fmt.Sprintf("%s %s %q", resp.Proto, resp.Status, body), true
}

// corpusForwarded is what the backend got for one request, less what
// differs by connection: X-Request-Id, and X-Forwarded-For and
// X-Forwarded-Proto, which must be the client's address and the
// listener's scheme.
func corpusForwarded(t *testing.T, s hostileSeen, from net.IP, proto string) string {
	t.Helper()
	var keep []string
	for line := range strings.SplitSeq(s.raw, "\r\n") {
		name, value, _ := strings.Cut(line, ":")
		value = strings.TrimSpace(value)
		switch strings.ToLower(name) {
		case "x-request-id":
			continue
		case "x-forwarded-for":
			if value != from.String() {
				t.Errorf("X-Forwarded-For %q, want %s", value, from)
			}
			continue
		case "x-forwarded-proto":
			if value != proto {
				t.Errorf("X-Forwarded-Proto %q, want %s", value, proto)
			}
			continue
		}
		keep = append(keep, line)
	}
	return fmt.Sprintf("%s\nbody %q whole %v", strings.Join(keep, "\r\n"), s.body, s.complete)
}

// The corpus of hostile heads, sent byte for byte to a plain and a TLS
// listener of one process: the same bytes must get the same answers on
// both (STYLE.md, one stack per protocol), the answers the product
// promises, and the same request forwarded, or none whole.
func TestHostileCorpusPlainAndTLS(t *testing.T) {
	r := corpusStart(t)
	cases := slices.Clone(corpusCases)
	cases = append(append(cases, corpusSeeds...), corpusFound...)
	if len(cases) > 254 {
		t.Fatalf("%d cases: more than the client addresses", len(cases))
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got [2]corpusResult
			for j, l := range r.lns {
				got[j] = corpusSend(l.dial(t, corpusClientIP(j, i)), tc)
			}
			t.Logf("%s: %v", corpusShort(tc.req), got[0])
			if !slices.Equal(got[0].answers, got[1].answers) || got[0].after != got[1].after {
				t.Errorf("the listeners answered differently to %s:\nplain: %v\nTLS:   %v", corpusShort(tc.req), got[0], got[1])
			}
			after := "open"
			if tc.closed {
				after = "closed"
			}
			for j, l := range r.lns {
				if !slices.Equal(got[j].codes, tc.status) || got[j].after != after {
					t.Errorf("%s: %v, want statuses %v then %s", l.name, got[j], tc.status, after)
				}
			}
			// An accepted request was recorded before its answer was
			// sent; a refused one may reach the backend as a streamed
			// head, never whole (the sweep below looks again once the
			// proxy is done).
			var fwd [2][]string
			var whole [2][]hostileSeen
			for j, l := range r.lns {
				from := corpusClientIP(j, i)
				whole[j] = hostileWhole(r.from(from))
				if len(whole[j]) != tc.whole {
					for _, s := range whole[j] {
						t.Logf("%s forwarded %s", l.name, corpusShort(s.raw))
					}
					t.Errorf("%s forwarded %d requests whole, want %d", l.name, len(whole[j]), tc.whole)
				}
				for _, s := range whole[j] {
					fwd[j] = append(fwd[j], corpusForwarded(t, s, from, l.proto))
				}
			}
			if !slices.Equal(fwd[0], fwd[1]) {
				t.Errorf("the listeners forwarded different requests:\nplain: %s\nTLS:   %s",
					corpusShort(strings.Join(fwd[0], "\n")), corpusShort(strings.Join(fwd[1], "\n")))
			}
			if tc.check != nil && len(whole[0]) > 0 {
				tc.check(t, whole[0])
			}
		})
	}
	t.Run("backend once the proxy is done", func(t *testing.T) {
		testwait.Until(t, 5*time.Second, "no request in flight to the backend", func() bool { return corpusInFlight(t, r.admin) == 0 })
		for _, s := range r.rec.requests() {
			if strings.Contains(s.raw, "/smuggled") {
				t.Errorf("a smuggled request reached the backend:\n%s", s.raw)
			}
		}
		for i, tc := range cases {
			for j, l := range r.lns {
				seen := r.from(corpusClientIP(j, i))
				n := len(hostileWhole(seen))
				if n != tc.whole {
					t.Errorf("%s: %s forwarded %d requests whole, want %d", tc.name, l.name, n, tc.whole)
				}
				// Only a POST's body streams before it is read whole.
				if len(seen) > n && !strings.HasPrefix(tc.req, "POST ") {
					t.Errorf("%s: %s forwarded %d requests that were not whole", tc.name, l.name, len(seen)-n)
				}
				if j == 0 {
					t.Logf("%-70q statuses %v: the backend got %d whole and %d not whole", tc.name, tc.status, n, len(seen)-n)
				}
			}
		}
	})
}

// corpusShort quotes s, cut to a length a failure message can show.
func corpusShort(s string) string {
	if len(s) > 300 {
		return fmt.Sprintf("%q...", s[:300])
	}
	return fmt.Sprintf("%q", s)
}

// corpusInFlight is the number of requests the proxy has in flight to the
// recorder's pool, from /status.
func corpusInFlight(t *testing.T, admin string) int64 {
	t.Helper()
	var n int64
	for _, p := range reloadGetStatus(t, admin).Pools {
		for _, z := range p.Zones {
			n += z.InFlight
		}
	}
	return n
}
