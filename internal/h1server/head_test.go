package h1server

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

type ctxKey struct{}

// readCommon runs readCommonHead on raw as the server does: after a first
// read has filled the buffer.
func readCommon(raw string, limit int64) (*http.Request, []byte, bool, *bufio.Reader) {
	br := bufio.NewReaderSize(strings.NewReader(raw), 4<<10)
	_, _ = br.Peek(1)
	ctx := context.WithValue(context.Background(), ctxKey{}, raw)
	req, head, ok := readCommonHead(br, limit, ctx)
	return req, head, ok, br
}

// sameRequest returns what differs between the request readCommonHead
// made and the one http.ReadRequest made of the same bytes, or "".
func sameRequest(got, want *http.Request) string {
	switch {
	case got.Method != want.Method:
		return "method " + got.Method + " vs " + want.Method
	case got.RequestURI != want.RequestURI:
		return "request URI"
	case !reflect.DeepEqual(*got.URL, *want.URL):
		return "URL"
	case got.Proto != want.Proto || got.ProtoMajor != want.ProtoMajor || got.ProtoMinor != want.ProtoMinor:
		return "proto"
	case !reflect.DeepEqual(got.Header, want.Header):
		return "header"
	case got.Host != want.Host:
		return "host"
	case got.Close != want.Close:
		return "close"
	case got.ContentLength != want.ContentLength:
		return "content length"
	case got.Body != http.NoBody || want.Body != http.NoBody:
		return "body"
	case !reflect.DeepEqual(got.TransferEncoding, want.TransferEncoding):
		return "transfer encoding"
	case got.Trailer != nil || want.Trailer != nil:
		return "trailer"
	}
	return ""
}

// checkCommon holds readCommonHead's reading of raw to http.ReadRequest's:
// the same request and the same bytes left, or no reading at all and
// nothing consumed.
func checkCommon(t *testing.T, raw string) bool {
	t.Helper()
	got, head, ok, br := readCommon(raw, 1<<20)
	if !ok {
		if br.Buffered() != min(len(raw), 4<<10) {
			t.Fatalf("%q: refused after consuming %d bytes", raw, min(len(raw), 4<<10)-br.Buffered())
		}
		return false
	}
	wbr := bufio.NewReaderSize(strings.NewReader(raw), 4<<10)
	want, err := http.ReadRequest(wbr)
	if err != nil {
		t.Fatalf("%q: read as common, net/http refuses it: %v", raw, err)
	}
	if d := sameRequest(got, want); d != "" {
		t.Fatalf("%q: %s differs\nours:     %+v\nnet/http: %+v", raw, d, got, want)
	}
	if got.Context().Value(ctxKey{}) != raw {
		t.Fatalf("%q: the request lacks the context it was given", raw)
	}
	if string(head) != raw[:len(head)] {
		t.Fatalf("%q: head %q is not the start of the input", raw, head)
	}
	rest, _ := io.ReadAll(br)
	wrest, _ := io.ReadAll(wbr)
	if !bytes.Equal(rest, wrest) {
		t.Fatalf("%q: left %q, net/http left %q", raw, rest, wrest)
	}
	return true
}

// FuzzReadCommonHeadSameAsNetHTTP feeds the same bytes to readCommonHead
// and http.ReadRequest. Whatever the first reads must be read the same by
// the second; whatever it leaves it must leave untouched.
func FuzzReadCommonHeadSameAsNetHTTP(f *testing.F) {
	for _, seed := range append(commonHeads, uncommonHeads...) {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		checkCommon(t, string(raw))
	})
}

// FuzzReadCommonHeadParts is FuzzReadCommonHeadSameAsNetHTTP with the
// head's shape held: the fuzzer varies the method, the target and two
// fields, so that most inputs are near the common kind, where the two
// readers could part.
func FuzzReadCommonHeadParts(f *testing.F) {
	f.Add("GET", "/", "Host", " a", "Accept", " */*")
	f.Add("DELETE", "/a/b?x=1&y=%20", "host", "a ", "Connection", " keep-alive, close")
	f.Add("HEAD", "/~a;b=c", "X-A", "\t1\t", "x-a", "2")
	f.Fuzz(func(t *testing.T, method, target, name1, value1, name2, value2 string) {
		checkCommon(t, method+" "+target+" HTTP/1.1\r\n"+name1+":"+value1+"\r\n"+name2+":"+value2+"\r\n\r\n")
	})
}

// commonHeads are read by readCommonHead.
var commonHeads = []string{
	"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n",
	"GET / HTTP/1.1\r\n\r\n", // no Host: the server's check refuses it, not the reader
	"HEAD /index.html HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\n",
	"DELETE /a/b;c=d/e:f@g HTTP/1.1\r\nhost: a\r\nx-forwarded-for: 1.2.3.4\r\n\r\n",
	"GET /search?q=a%20b&x=%zz#frag HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /a?b? HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /~user/$x&y+z,w HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, close\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nconnection: Close\r\n\r\n",
	"GET / HTTP/1.1\r\nHost:a\r\nAccept:  \t text/html \t \r\nX-Empty:\r\nX-Empty: \r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nCookie: a=1\r\nCookie: b=2\r\nCOOKIE: c=3\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nx_under.dot!#$%&'*+-^`|~: v\r\n\r\n",
	"OPTIONS /x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX: caf\xc3\xa9 \x80\xff\r\n\r\n", // obs-text, as net/textproto reads it
	"GET /static/app.js HTTP/1.1\r\nHost: example.com\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\n" +
		"Accept: */*\r\nAccept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate, br\r\n" +
		"Referer: https://example.com/\r\nConnection: keep-alive\r\nSec-Fetch-Dest: script\r\n" +
		"Sec-Fetch-Mode: no-cors\r\nSec-Fetch-Site: same-origin\r\nIf-None-Match: \"abc\"\r\n" +
		"Cache-Control: max-age=0\r\n\r\n",
}

// uncommonHeads are left to http.ReadRequest.
var uncommonHeads = []string{
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
	"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nTrailer: X\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nPragma: no-cache\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
	"GET / HTTP/1.0\r\nHost: a\r\n\r\n",
	"GET / HTTP/1.1 \r\nHost: a\r\n\r\n",
	"GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
	"get / HTTP/1.1\r\nHost: a\r\n\r\n",
	"CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n",
	"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
	"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET //a/b HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /%41 HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /a(b) HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /a? HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /\x7f HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET / HTTP/1.1\nHost: a\n\n",
	"GET / HTTP/1.1\r\nHost: a\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
	"GET / HTTP/1.1\r\n Host: a\r\n\r\n",
	"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
	"GET / HTTP/1.1\r\n: a\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX: \x00\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\n",   // not whole yet
	"GET / HTTP/1.1\r\nHost: a\r\n\r", // not whole yet
	"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\n" + strings.Repeat("X: y\r\n", maxCommonFields) + "\r\n",
}

func TestReadCommonHead(t *testing.T) {
	for _, raw := range commonHeads {
		if !checkCommon(t, raw) {
			t.Errorf("%q: left to net/http, want it read as common", raw)
		}
	}
	for _, raw := range uncommonHeads {
		if checkCommon(t, raw) {
			t.Errorf("%q: read as common, want it left to net/http", raw)
		}
	}
	// Up to the limit, and only whole heads within it.
	raw := commonHeads[0]
	if _, _, ok, _ := readCommon(raw, int64(len(raw))); !ok {
		t.Errorf("a head of exactly the limit was left to net/http")
	}
	if _, _, ok, br := readCommon(raw, int64(len(raw)-1)); ok || br.Buffered() != len(raw) {
		t.Errorf("a head over the limit was read, or bytes consumed")
	}
	// Many fields get a map sized for them; one fewer than the most.
	many := "GET / HTTP/1.1\r\nHost: a\r\n" + strings.Repeat("X: y\r\n", maxCommonFields-1) + "\r\n"
	if !checkCommon(t, many) {
		t.Errorf("a head of %d fields was left to net/http", maxCommonFields)
	}
}

// TestReadCommonHeadAllocations counts what a head with only Host costs:
// the head's one string, the request, its URL and its header map. Other
// fields add one slice for their values, and more than 8 a bigger map.
func TestReadCommonHeadAllocations(t *testing.T) {
	raw := commonHeads[0] + commonHeads[0]
	br := bufio.NewReaderSize(nil, 4<<10)
	src := strings.NewReader("")
	ctx := context.Background()
	n := testing.AllocsPerRun(100, func() {
		src.Reset(raw)
		br.Reset(src)
		_, _ = br.Peek(1)
		if _, _, ok := readCommonHead(br, 1<<20, ctx); !ok {
			t.Fatal("not read as common")
		}
	})
	if n > 4 {
		t.Errorf("%v allocations per common head, want at most 4", n)
	}
	var before, after int
	n2 := testing.AllocsPerRun(100, func() {
		src.Reset(raw)
		br.Reset(src)
		_, _ = br.Peek(1)
		before = br.Buffered()
		wr, _ := http.ReadRequest(br)
		_ = wr.WithContext(ctx)
		after = br.Buffered()
	})
	if before-after != len(commonHeads[0]) {
		t.Fatalf("http.ReadRequest consumed %d bytes, want %d", before-after, len(commonHeads[0]))
	}
	if n >= n2 {
		t.Errorf("%v allocations per common head, no fewer than http.ReadRequest's %v", n, n2)
	}
}

func BenchmarkReadRequestHead(b *testing.B) {
	ctx := context.Background()
	for _, head := range []struct{ name, raw string }{
		{"short", commonHeads[0]},
		{"browser", commonHeads[len(commonHeads)-1]},
	} {
		b.Run(head.name, func(b *testing.B) { benchmarkReadRequestHead(b, ctx, head.raw) })
	}
}

func benchmarkReadRequestHead(b *testing.B, ctx context.Context, raw string) {
	for _, bc := range []struct {
		name string
		read func(br *bufio.Reader) bool
	}{
		{"common", func(br *bufio.Reader) bool {
			_, _, ok := readCommonHead(br, 1<<20, ctx)
			return ok
		}},
		{"net-http", func(br *bufio.Reader) bool {
			r, err := http.ReadRequest(br)
			if err == nil {
				_ = r.WithContext(ctx)
			}
			return err == nil
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			br := bufio.NewReaderSize(nil, 4<<10)
			src := strings.NewReader("")
			b.ReportAllocs()
			for b.Loop() {
				src.Reset(raw)
				br.Reset(src)
				_, _ = br.Peek(1)
				if !bc.read(br) {
					b.Fatal("not read")
				}
			}
		})
	}
}
