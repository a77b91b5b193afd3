package h1server

import (
	"bufio"
	"bytes"
	"context"
	"net/http"
	"strings"

	"github.com/azimuthproxy/azimuth/internal/h1wire"
	"golang.org/x/net/http/httpguts"
)

// maxCommonFields is the most fields a head may have and still be read by
// readCommonHead.
const maxCommonFields = 64

// readCommonHead reads the request head at the front of br's buffer when
// it is of the common kind, and returns the request, with ctx as its
// context, and the head's bytes, which stay valid until br reads again.
// Any other head, or one not wholly buffered within limit bytes, gets
// false with nothing consumed, and http.ReadRequest reads it.
//
// The common kind is what browsers, load generators and other proxies
// send for requests without a body, and what this reader can get right
// without the general rules: an HTTP/1.1 request line with a method of
// capital letters (not CONNECT or PRI) and a target in origin form whose
// path needs neither unescaping nor escaping (letters, digits and
// -._~$&+,/:;=@, not starting with //) with an optional non-empty query of
// visible characters; CRLF line ends; field lines as h1wire.FieldLine
// reads them (token names, values of field text, no continuation lines);
// at most one Host field, and none of Content-Length,
// Transfer-Encoding, Trailer or Pragma, whose meanings the general reader
// works out. FuzzReadCommonHeadSameAsNetHTTP holds the result to
// http.ReadRequest's for the same bytes.
func readCommonHead(br *bufio.Reader, limit int64, ctx context.Context) (*http.Request, []byte, bool) {
	buf, _ := br.Peek(br.Buffered())
	if int64(len(buf)) > limit {
		buf = buf[:limit]
	}
	end := bytes.Index(buf, crlf2)
	if end < 0 {
		return nil, nil, false
	}
	raw := buf[:end+4]
	methodEnd, targetEnd, nfields, ok := scanCommonHead(raw)
	if !ok {
		return nil, nil, false
	}

	// One string holds the head; the method, target and values are parts
	// of it.
	s := string(raw)
	req, err := http.NewRequestWithContext(ctx, s[:methodEnd], "", nil)
	if err != nil {
		return nil, nil, false
	}
	target := s[methodEnd+1 : targetEnd]
	req.RequestURI = target
	req.URL.Path = target
	for i := 0; i < len(target); i++ {
		if target[i] == '?' {
			req.URL.Path, req.URL.RawQuery = target[:i], target[i+1:]
			break
		}
	}
	req.Body = http.NoBody
	if nfields > 8 { // beyond one group of the map NewRequestWithContext made
		req.Header = make(http.Header, nfields)
	}
	values := make([]string, nfields)
	line := targetEnd + len(" HTTP/1.1\r\n")
	for {
		next := line + bytes.Index(raw[line:], crlf)
		if next == line {
			break
		}
		colon := line + bytes.IndexByte(raw[line:next], ':')
		value := strings.Trim(s[colon+1:next], " \t") // as net/textproto trims values
		name := raw[line:colon]
		line = next + 2
		if bytes.EqualFold(name, []byte("Host")) {
			req.Host = value // as http.ReadRequest, which leaves it out of the header
			continue
		}
		values = h1wire.AddValue(req.Header, values, h1wire.CanonicalKey(s[colon-len(name):colon]), value)
	}
	req.Close = httpguts.HeaderValuesContainsToken(req.Header["Connection"], "close")
	_, _ = br.Discard(len(raw))
	return req, raw, true
}

var (
	crlf  = []byte("\r\n")
	crlf2 = []byte("\r\n\r\n")
)

// scanCommonHead checks that head, which ends with its empty line, is of
// the kind readCommonHead reads, and returns where the method and the
// target end and how many fields other than Host follow.
func scanCommonHead(head []byte) (methodEnd, targetEnd, nfields int, ok bool) {
	i := 0
	for i < len(head) && 'A' <= head[i] && head[i] <= 'Z' {
		i++
	}
	if i == 0 || head[i] != ' ' || string(head[:i]) == http.MethodConnect || string(head[:i]) == "PRI" {
		return 0, 0, 0, false
	}
	methodEnd = i
	i++
	if head[i] != '/' || head[i+1] == '/' {
		return 0, 0, 0, false
	}
	for i < len(head) && pathByte[head[i]] {
		i++
	}
	if head[i] == '?' {
		i++
		q := i
		for i < len(head) && '!' <= head[i] && head[i] <= '~' {
			i++
		}
		if i == q {
			return 0, 0, 0, false // "?" alone is a forced empty query
		}
	}
	targetEnd = i
	if !bytes.HasPrefix(head[i:], []byte(" HTTP/1.1\r\n")) {
		return 0, 0, 0, false
	}
	i += len(" HTTP/1.1\r\n")

	hosts := 0
	for {
		if head[i] == '\r' {
			return methodEnd, targetEnd, nfields - hosts, head[i+1] == '\n' && i+2 == len(head)
		}
		colon, _, _, next, ok := h1wire.FieldLine(head, i)
		if !ok {
			return 0, 0, 0, false
		}
		switch n := head[i:colon]; {
		case bytes.EqualFold(n, []byte("Host")):
			hosts++
			if hosts > 1 {
				return 0, 0, 0, false
			}
		case bytes.EqualFold(n, []byte("Content-Length")), bytes.EqualFold(n, []byte("Transfer-Encoding")),
			bytes.EqualFold(n, []byte("Trailer")), bytes.EqualFold(n, []byte("Pragma")):
			return 0, 0, 0, false
		}
		i = next
		nfields++
		if nfields > maxCommonFields {
			return 0, 0, 0, false
		}
	}
}

// pathByte holds the bytes a path may have and be its own escaped form
// (net/url's shouldEscape with encodePath says no to each).
var pathByte = func() (path [256]bool) {
	for c := 0; c < 256; c++ {
		alnum := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		path[c] = alnum || c < 128 && bytes.IndexByte([]byte("-_.~$&+,/:;=@"), byte(c)) >= 0
	}
	return path
}()
