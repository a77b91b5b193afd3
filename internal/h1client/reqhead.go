package h1client

import (
	"bufio"
	"net/http"
	"net/http/httptrace"
	"strings"

	"github.com/azimuthproxy/azimuth/internal/h1wire"
	"golang.org/x/net/http/httpguts"
)

// writeHead writes a request without a body to bw, as req.Write does,
// byte for byte. A GET or HEAD with a plain Host, which is nearly every
// such request a proxy sends, is written here with none of req.Write's
// allocations (two fmt.Fprintf, a transfer writer, a sorted copy of the
// fields); anything else goes to req.Write. FuzzWriteHeadSameAsWrite
// holds the two to the same bytes.
func (c *conn) writeHead(bw *bufio.Writer, req *http.Request) error {
	host, uri, ok := plainHead(req)
	if !ok {
		return req.Write(bw)
	}
	_, _ = bw.WriteString(req.Method)
	_ = bw.WriteByte(' ')
	_, _ = bw.WriteString(uri)
	_, _ = bw.WriteString(" HTTP/1.1\r\nHost: ")
	_, _ = bw.WriteString(host)
	_, _ = bw.WriteString("\r\n")
	ua := defaultUserAgent
	if vv, ok := req.Header["User-Agent"]; ok {
		ua = ""
		if len(vv) > 0 {
			ua = vv[0]
		}
	}
	if ua != "" {
		_, _ = bw.WriteString("User-Agent: ")
		_, _ = bw.WriteString(h1wire.FieldValue(ua))
		_, _ = bw.WriteString("\r\n")
	}
	c.keys = h1wire.WriteFields(bw, req.Header, c.keys, reqWriteSkip, false)
	_, err := bw.WriteString("\r\n")
	return err
}

// defaultUserAgent is what req.Write sends when a request has no
// User-Agent field at all; the proxy's forwarder always sets one, empty
// if the client sent none.
const defaultUserAgent = "Go-http-client/1.1"

// reqWriteSkip are the fields req.Write does not copy from the header map.
var reqWriteSkip = []string{"Host", "User-Agent", "Content-Length", "Transfer-Encoding", "Trailer"}

// plainHead reports whether req.Write would write req's head with
// nothing beyond its request line, Host, User-Agent and header map, and
// returns the Host value and request target it would write.
func plainHead(req *http.Request) (host, uri string, ok bool) {
	if req.Method != http.MethodGet && req.Method != http.MethodHead || req.URL == nil ||
		req.Close || req.ContentLength != 0 || len(req.TransferEncoding) > 0 || req.Trailer != nil ||
		(req.Body != nil && req.Body != http.NoBody) {
		return "", "", false
	}
	host = req.Host
	if host == "" {
		host = req.URL.Host
	}
	// Not ASCII (punycode), not valid (req.Write sends it empty), or with
	// an IPv6 zone (req.Write removes it): req.Write's own work.
	if host == "" || !httpguts.ValidHostHeader(host) || !h1wire.PrintableASCII(host) || strings.Contains(host, "%") {
		return "", "", false
	}
	uri = req.URL.RequestURI()
	if !h1wire.PrintableASCII(uri) {
		return "", "", false // req.Write refuses control bytes
	}
	if httptrace.ContextClientTrace(req.Context()) != nil {
		return "", "", false // it reports to the trace as it writes
	}
	return host, uri, true
}
