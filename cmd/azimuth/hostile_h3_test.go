package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/internal/testwait"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

// hostileH3Client is an HTTP/3 client of the fleet's listener.
func hostileH3Client(t *testing.T, f *hostileFleet) *http.Client {
	t.Helper()
	tr := &http3.Transport{TLSClientConfig: f.tlsConfig()}
	t.Cleanup(func() { tr.Close() })
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// Hostile HTTP/3 requests: a header section over max_header_bytes gets 431
// and a body shorter than its Content-Length gets 400, and neither reaches
// the backend; a well-formed request on the same connection afterwards is
// served. The process's goroutines and open files return to their values
// before.
func TestHostileH3Requests(t *testing.T) {
	f := hostileStart(t)
	base := hostileUsageNow(t, f.admin)
	client := hostileH3Client(t, f)
	url := "https://" + f.addr
	for _, tc := range []struct {
		name   string
		req    func() *http.Request
		status int
	}{
		{"header section over max_header_bytes", func() *http.Request {
			r, _ := http.NewRequest(http.MethodGet, url+"/big", nil)
			for i := range 20 {
				r.Header.Set(fmt.Sprintf("X-Big-%d", i), strings.Repeat("b", 4000))
			}
			return r
		}, http.StatusRequestHeaderFieldsTooLarge},
		{"body shorter than its content-length", func() *http.Request {
			r, _ := http.NewRequest(http.MethodPost, url+"/short", io.NopCloser(strings.NewReader("0123456789")))
			r.ContentLength = 100
			return r
		}, http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(f.rec.requests())
			resp, err := client.Do(tc.req())
			if err != nil {
				t.Fatalf("request: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status || resp.ProtoMajor != 3 {
				t.Errorf("%d over %s (%q), want %d over HTTP/3", resp.StatusCode, resp.Proto, body, tc.status)
			}
			next, err := tlsproxyGet(client, url+"/next")
			if err != nil || next.StatusCode != http.StatusOK {
				t.Fatalf("a well-formed request afterwards: %v %v", next, err)
			}
			// A POST's body streams, so the backend may see its head,
			// but never a whole request.
			seen := hostileWhole(f.rec.requests()[before:])
			if len(seen) != 1 || !strings.HasPrefix(seen[0].raw, "GET /next ") {
				for _, r := range seen {
					t.Logf("backend got:\n%s", r.raw)
				}
				t.Fatalf("backend got %d whole requests, want only /next", len(seen))
			}
		})
	}
	client.Transport.(*http3.Transport).Close()
	hostileBackToBaseline(t, f.admin, base)
}

// HTTP/3 rapid reset: a client that sends requests and cancels each at
// once, as fast as the server's stream credit lets it: either resetting
// both directions right after the HEADERS frame (which may never leave
// the client), or finishing the request (FIN) and then refusing the
// response (STOP_SENDING, H3_REQUEST_CANCELLED), so the server has a
// whole request whose handler it must start and then stop. Requests
// running at the backend at once stay within h3_max_streams, every one of
// them ends, and the process's goroutines and open files return to their
// values before.
func TestHostileH3RapidReset(t *testing.T) {
	const streams = 1000
	f := hostileStart(t)
	for _, tc := range []struct {
		name   string
		cancel func(*http3.RequestStream)
	}{
		{"reset at once", func(str *http3.RequestStream) {
			str.CancelRead(quic.StreamErrorCode(http3.ErrCodeRequestCanceled))
			str.CancelWrite(quic.StreamErrorCode(http3.ErrCodeRequestCanceled))
		}},
		{"request sent, response refused", func(str *http3.RequestStream) {
			_ = str.Close()
			str.CancelRead(quic.StreamErrorCode(http3.ErrCodeRequestCanceled))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := hostileUsageNow(t, f.admin)
			seenBefore := f.hang.seen.Load()
			f.hang.peak.Store(0)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			conn, err := quic.DialAddr(ctx, f.addr, f.tlsConfig(http3.NextProtoH3), &quic.Config{})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.CloseWithError(0, "")
			cc := (&http3.Transport{}).NewClientConn(conn)
			start := time.Now()
			sent := 0
			for i := range streams {
				str, err := cc.OpenRequestStream(ctx)
				if err != nil {
					t.Logf("opening stream %d: %v", i, err)
					break
				}
				req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("https://a.test/hang/%d", i), nil)
				if err := str.SendRequestHeader(req); err != nil {
					t.Logf("stream %d: %v", i, err)
					break
				}
				tc.cancel(str)
				sent++
			}
			took := time.Since(start)
			testwait.Until(t, 10*time.Second, "backend requests to end", func() bool { return f.hang.inflight.Load() == 0 })
			t.Logf("sent and cancelled %d of %d requests in %v; backend saw %d requests, at most %d at once",
				sent, streams, took.Round(time.Millisecond), f.hang.seen.Load()-seenBefore, f.hang.peak.Load())
			if p := f.hang.peak.Load(); p > hostileStreamLimit {
				t.Errorf("%d requests ran at the backend at once, h3_max_streams %d", p, hostileStreamLimit)
			}
			conn.CloseWithError(0, "")
			hostileBackToBaseline(t, f.admin, base)
		})
	}
}
