package h1client

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/azimuthproxy/azimuth/internal/h1wire"
	"golang.org/x/net/http/httpguts"
)

// readResponse reads a response head from br as http.ReadResponse does,
// for req. The common head is parsed from br's buffer in one pass
// (plainResponse says which); its values are substrings of one string,
// and its body reads through fb, which the connection keeps. Any other
// head, or one not all buffered yet, goes to http.ReadResponse, which
// reads it from the start: nothing of it was consumed.
func readResponse(br *bufio.Reader, req *http.Request, fb *fixedBody) (*http.Response, error) {
	if br.Buffered() == 0 {
		// What http.ReadResponse's first read would return.
		if _, err := br.Peek(1); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	buf, _ := br.Peek(br.Buffered())
	resp, n, ok := plainResponse(buf, req)
	if !ok {
		return http.ReadResponse(br, req)
	}
	_, _ = br.Discard(n)
	if resp.ContentLength == 0 {
		resp.Body = http.NoBody
	} else {
		*fb = fixedBody{r: br, n: resp.ContentLength}
		resp.Body = fb
	}
	return resp, nil
}

// plainResponse parses the head at the start of buf when it is one that
// http.ReadResponse reads without any of its special cases: HTTP/1.1, a
// final status from 200 to 599 that has a body (not 204 or 304) to a
// request other than HEAD, field lines as h1wire.FieldLine reads them,
// one Content-Length, no Transfer-Encoding or Pragma field, and no close
// in Connection. It returns the response (without its body) and the
// head's length, or false for any other head, whatever
// http.ReadResponse would make of it.
func plainResponse(buf []byte, req *http.Request) (*http.Response, int, bool) {
	if req != nil && req.Method == http.MethodHead {
		return nil, 0, false
	}
	end := bytes.Index(buf, []byte("\r\n\r\n"))
	if end < 0 || !bytes.HasPrefix(buf, []byte("HTTP/1.1 ")) {
		return nil, 0, false
	}
	raw := buf[:end+4]
	s := string(raw[:end+2]) // the status and field lines, each with its CRLF; values are parts of it

	eol := strings.Index(s, "\r\n")
	status := s[len("HTTP/1.1 "):eol]
	if len(status) < 3 || len(status) > 3 && status[3] != ' ' || strings.ContainsAny(status, "\r\n") ||
		!isDigit(status[0]) || !isDigit(status[1]) || !isDigit(status[2]) {
		return nil, 0, false
	}
	code := int(status[0]-'0')*100 + int(status[1]-'0')*10 + int(status[2]-'0')
	if code < 200 || code > 599 || code == http.StatusNoContent || code == http.StatusNotModified {
		return nil, 0, false
	}

	lines := strings.Count(s, "\n") - 1
	h := make(http.Header, lines)
	values := make([]string, lines) // the first value of each field, as textproto does
	for i := eol + 2; i < len(s); {
		colon, vstart, vend, next, ok := h1wire.FieldLine(raw, i)
		if !ok {
			return nil, 0, false // also a line folded onto the one before
		}
		values = h1wire.AddValue(h, values, h1wire.CanonicalKey(s[i:colon]), s[vstart:vend])
		i = next
	}

	cl := h["Content-Length"]
	if len(cl) != 1 || h["Transfer-Encoding"] != nil || h["Pragma"] != nil ||
		httpguts.HeaderValuesContainsToken(h["Connection"], "close") {
		return nil, 0, false
	}
	n, err := strconv.ParseUint(cl[0], 10, 63)
	if err != nil {
		return nil, 0, false
	}
	return &http.Response{
		Status:        status,
		StatusCode:    code,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		ContentLength: int64(n),
		Request:       req,
	}, end + 4, true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// fixedBody is a body of known length read from the connection, as
// net/http's: io.EOF comes with its last bytes, and a connection that ends
// before them gives io.ErrUnexpectedEOF.
type fixedBody struct {
	r *bufio.Reader
	n int64 // bytes left
}

func (b *fixedBody) Read(p []byte) (int, error) {
	if b.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.n {
		p = p[:b.n]
	}
	n, err := b.r.Read(p)
	b.n -= int64(n)
	switch {
	case err == io.EOF && b.n > 0:
		err = io.ErrUnexpectedEOF
	case err == nil && n > 0 && b.n == 0:
		err = io.EOF
	}
	return n, err
}

// Close is never called on the connection's body (backendBody decides
// what becomes of the connection); it is here to be an io.ReadCloser.
func (b *fixedBody) Close() error { return nil }
