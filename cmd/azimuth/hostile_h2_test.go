package main

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/internal/testwait"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// hostileH2Event is one frame the server sent, reduced to what the tests
// look at (the framer reuses its frames).
type hostileH2Event struct {
	kind   string // "headers", "data", "rst", "goaway", "closed"
	stream uint32
	code   http2.ErrCode // rst and goaway
	status string        // headers
	end    bool          // END_STREAM
}

func (e hostileH2Event) String() string {
	switch e.kind {
	case "headers":
		return "HEADERS :status " + e.status
	case "rst":
		return "RST_STREAM " + e.code.String()
	case "goaway":
		return "GOAWAY " + e.code.String()
	}
	return e.kind
}

// hostileH2 is a raw HTTP/2 client connection over TLS (ALPN h2): the
// test writes exact frames and reads the server's frames as events.
type hostileH2 struct {
	c      *tls.Conn
	fr     *http2.Framer
	events chan hostileH2Event
	wg     sync.WaitGroup
	hbuf   bytes.Buffer
	enc    *hpack.Encoder
	// ended is set when the server sent GOAWAY or closed the connection.
	ended atomic.Bool
}

// hostileDialH2 connects, sends the preface and SETTINGS, and reads the
// server's frames until the connection ends.
func hostileDialH2(t *testing.T, f *hostileFleet) *hostileH2 {
	t.Helper()
	c, err := tls.Dial("tcp", f.addr, f.tlsConfig("h2"))
	if err != nil {
		t.Fatal(err)
	}
	if p := c.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Fatalf("negotiated %q, want h2", p)
	}
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	h := &hostileH2{c: c, fr: http2.NewFramer(c, c), events: make(chan hostileH2Event, 1<<16)}
	h.enc = hpack.NewEncoder(&h.hbuf)
	h.fr.ReadMetaHeaders = hpack.NewDecoder(64<<10, nil)
	if _, err := c.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	if err := h.fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	h.wg.Go(h.read)
	t.Cleanup(func() {
		c.Close()
		h.wg.Wait()
	})
	return h
}

func (h *hostileH2) read() {
	defer close(h.events)
	for {
		f, err := h.fr.ReadFrame()
		if err != nil {
			h.ended.Store(true)
			h.events <- hostileH2Event{kind: "closed"}
			return
		}
		var e hostileH2Event
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			e = hostileH2Event{kind: "headers", stream: f.StreamID, status: f.PseudoValue("status"), end: f.StreamEnded()}
		case *http2.DataFrame:
			e = hostileH2Event{kind: "data", stream: f.StreamID, end: f.StreamEnded()}
		case *http2.RSTStreamFrame:
			e = hostileH2Event{kind: "rst", stream: f.StreamID, code: f.ErrCode}
		case *http2.GoAwayFrame:
			h.ended.Store(true)
			e = hostileH2Event{kind: "goaway", code: f.ErrCode}
		default:
			continue
		}
		select {
		case h.events <- e:
		default: // a test that stopped reading does not block the reader
		}
	}
}

// block hpack-encodes fields, given as name, value pairs, exactly as
// listed: no check, no reordering, no lower-casing.
func (h *hostileH2) block(fields ...string) []byte {
	h.hbuf.Reset()
	for i := 0; i+1 < len(fields); i += 2 {
		_ = h.enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	return bytes.Clone(h.hbuf.Bytes())
}

// await returns the server's answer on stream id: its response HEADERS,
// an RST_STREAM, or a GOAWAY or the connection's end, whichever is first.
func (h *hostileH2) await(t *testing.T, id uint32) hostileH2Event {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case e, ok := <-h.events:
			if !ok {
				return hostileH2Event{kind: "closed"}
			}
			if e.stream == id && (e.kind == "headers" || e.kind == "rst") || e.kind == "goaway" || e.kind == "closed" {
				return e
			}
		case <-timeout:
			t.Fatalf("no answer on stream %d within 5s", id)
		}
	}
}

// hostileGET is a well-formed request's header fields.
func hostileGET(path string) []string {
	return []string{":method", "GET", ":scheme", "https", ":authority", "a.test", ":path", path}
}

func hostilePOST(path string, extra ...string) []string {
	return append([]string{":method", "POST", ":scheme", "https", ":authority", "a.test", ":path", path}, extra...)
}

// hostilePUT is hostilePOST with a method whose body is read whole before
// it is sent (an idempotent request, which the proxy may replay).
func hostilePUT(path string, extra ...string) []string {
	f := hostilePOST(path, extra...)
	f[1] = "PUT"
	return f
}

// Malformed HTTP/2 requests (RFC 9113 section 8.1.1 and 8.2), written as
// raw frames over the TLS listener: each is a stream error (RST_STREAM
// PROTOCOL_ERROR) or an HTTP error answer, nothing reaches the backend
// whole, and the connection stays usable: a well-formed request on the
// next stream is served. A POST's body streams (it is never replayed), so
// its head may reach the backend before the body turns out malformed; the
// backend then never gets it whole, or (DATA past the declared length)
// gets exactly the declared length and nothing more.
func TestHostileH2Frames(t *testing.T) {
	f := hostileStart(t)
	protocolError := hostileH2Event{kind: "rst", code: http2.ErrCodeProtocol}
	// RFC 9113 section 8.1.1 lets a server answer a malformed request
	// before it ends the stream; Go's server answers 400 to
	// connection-specific fields and a body shorter than its length.
	badRequest := hostileH2Event{kind: "headers", status: "400"}
	for _, tc := range []struct {
		name   string
		fields []string
		data   []string // DATA frames after HEADERS, the last with END_STREAM
		want   hostileH2Event
		or     hostileH2Event // another answer the RFC allows, when timing picks
		// declared is the body the backend may get whole: a streamed
		// body cut at its declared length.
		declared string
	}{
		{name: "well-formed request is forwarded", fields: hostileGET("/ok"), want: hostileH2Event{kind: "headers", status: "200"}},
		{name: "connection header", fields: append(hostileGET("/a"), "connection", "keep-alive"), want: badRequest},
		{name: "keep-alive header", fields: append(hostileGET("/a"), "keep-alive", "timeout=5"), want: badRequest},
		{name: "transfer-encoding chunked", fields: hostilePOST("/a", "transfer-encoding", "chunked"), data: []string{"5\r\nhello\r\n0\r\n\r\n"}, want: badRequest},
		{name: "te other than trailers", fields: append(hostileGET("/a"), "te", "gzip"), want: badRequest},
		{name: "upgrade header", fields: append(hostileGET("/a"), "upgrade", "websocket"), want: badRequest},
		{name: "missing :path", fields: []string{":method", "GET", ":scheme", "https", ":authority", "a.test"}, want: protocolError},
		{name: "missing :method", fields: []string{":scheme", "https", ":authority", "a.test", ":path", "/a"}, want: protocolError},
		{name: "duplicate :path", fields: append(hostileGET("/a"), ":path", "/b"), want: protocolError},
		{name: "duplicate :method", fields: append(hostileGET("/a"), ":method", "POST"), want: protocolError},
		{name: "pseudo-header after a regular one", fields: []string{":method", "GET", ":scheme", "https", "x-a", "1", ":authority", "a.test", ":path", "/a"}, want: protocolError},
		{name: "unknown pseudo-header", fields: append(hostileGET("/a"), ":status", "200"), want: protocolError},
		{name: "uppercase header name", fields: append(hostileGET("/a"), "X-Upper", "1"), want: protocolError},
		{name: "space in a header name", fields: append(hostileGET("/a"), "x bad", "1"), want: protocolError},
		{name: "newline in a header value", fields: append(hostileGET("/a"), "x-bad", "a\r\nx-injected: 1"), want: protocolError},
		{name: "content-length over the DATA sent", fields: hostilePOST("/a", "content-length", "10"), data: []string{"hello"}, want: badRequest},
		{name: "content-length under the DATA sent", fields: hostilePOST("/a", "content-length", "5"), data: []string{"hello", " world"}, want: protocolError, declared: "hello"},
		{name: "replayable: content-length over the DATA sent", fields: hostilePUT("/a", "content-length", "10"), data: []string{"hello"}, want: badRequest},
		{name: "replayable: content-length under the DATA sent", fields: hostilePUT("/a", "content-length", "5"), data: []string{"hello", " world"}, want: protocolError},
		// Go's server takes the first of several Content-Length fields and
		// reads one it cannot parse as 0; the proxy rejects both.
		{name: "two differing content-lengths", fields: hostilePOST("/a", "content-length", "5", "content-length", "6"), data: []string{"hello"}, want: badRequest},
		{name: "invalid content-length without a body", fields: hostilePOST("/a", "content-length", "5x"), want: badRequest},
		// The DATA frame may reach the server (which then resets the
		// stream, having read the length as 0) before the proxy answers.
		{name: "invalid content-length with a body", fields: hostilePOST("/a", "content-length", "5x"), data: []string{"hello"}, want: badRequest, or: protocolError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := hostileDialH2(t, f)
			before := len(f.rec.requests())
			if err := h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: h.block(tc.fields...), EndHeaders: true, EndStream: len(tc.data) == 0}); err != nil {
				t.Fatal(err)
			}
			for i, d := range tc.data {
				if err := h.fr.WriteData(1, i == len(tc.data)-1, []byte(d)); err != nil {
					t.Fatal(err)
				}
			}
			got := h.await(t, 1)
			same := func(a, b hostileH2Event) bool { return a.kind == b.kind && a.code == b.code && a.status == b.status }
			if !same(got, tc.want) && (tc.or.kind == "" || !same(got, tc.or)) {
				t.Errorf("answer %v, want %v", got, tc.want)
			}
			forwarded := 0
			if tc.want.status == "200" {
				forwarded = 1
			}
			// The well-formed request on the next stream shows the error
			// was the stream's alone; it is forwarded too.
			if err := h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: h.block(hostileGET("/next")...), EndHeaders: true, EndStream: true}); err != nil {
				t.Fatal(err)
			}
			if next := h.await(t, 3); next.kind != "headers" || next.status != "200" {
				t.Errorf("next stream on the same connection: %v, want 200", next)
			}
			// A POST's body streams (it cannot be replayed), so a
			// malformed one may reach the backend, but never whole: its
			// connection breaks with the client's stream.
			seen := hostileWhole(f.rec.requests()[before:])
			if tc.declared != "" && len(seen) == 2 {
				// Cut at its declared length, the POST is a whole request
				// to the backend, and its body may end there after /next
				// went through.
				for i, r := range seen {
					if r.body == tc.declared && strings.HasPrefix(r.raw, "POST ") {
						seen = append(seen[:i:i], seen[i+1:]...)
						break
					}
				}
			}
			if len(seen) != forwarded+1 || !strings.HasPrefix(seen[len(seen)-1].raw, "GET /next ") {
				for _, r := range seen {
					t.Logf("backend got:\n%s", r.raw)
				}
				t.Fatalf("backend got %d whole requests, want %d and then /next", len(seen), forwarded)
			}
		})
	}
}

// A header list over max_header_bytes, its block ended properly. Sent in
// one HEADERS frame, it gets 431 and the connection stays usable; spread
// over CONTINUATION frames, Go's server stops decoding at the first
// fragment past the limit (its defence against CONTINUATION floods) and
// ends the connection with GOAWAY PROTOCOL_ERROR. Nothing is forwarded.
func TestHostileH2HeaderListOverLimit(t *testing.T) {
	f := hostileStart(t)
	for _, tc := range []struct {
		name  string
		chunk int // bytes of the block per frame
		want  hostileH2Event
	}{
		{"one HEADERS frame: 431", 1 << 20, hostileH2Event{kind: "headers", status: "431"}},
		{"CONTINUATION frames: connection error", 16 << 10, hostileH2Event{kind: "goaway", code: http2.ErrCodeProtocol}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := hostileDialH2(t, f)
			fields := hostileGET("/big")
			for i := range 20 {
				fields = append(fields, "x-big-"+strconv.Itoa(i), strings.Repeat("b", 4000))
			}
			block := h.block(fields...)
			first := min(tc.chunk, len(block))
			if err := h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block[:first], EndStream: true, EndHeaders: first == len(block)}); err != nil {
				t.Fatal(err)
			}
			for rest := block[first:]; len(rest) > 0; {
				n := min(tc.chunk, len(rest))
				if err := h.fr.WriteContinuation(1, n == len(rest), rest[:n]); err != nil {
					break // the server hung up
				}
				rest = rest[n:]
			}
			if got := h.await(t, 1); got.kind != tc.want.kind || got.status != tc.want.status || got.code != tc.want.code {
				t.Errorf("80,000 bytes of header fields (%d encoded): %v, want %v", len(block), got, tc.want)
			}
			if n := len(f.rec.requests()); n != 0 {
				t.Errorf("backend got %d requests", n)
			}
		})
	}
}

// hostileFlood writes HEADERS without END_HEADERS and then CONTINUATION
// frames of frag without END_HEADERS until the server ends the connection,
// limit bytes are sent or 10s pass. It returns the bytes sent before the
// server's GOAWAY or close arrived (writes already in the socket buffers
// when it does are not counted) and how the connection ended.
func hostileFlood(t *testing.T, h *hostileH2, frag []byte, limit int) (int, hostileH2Event) {
	t.Helper()
	first := h.block(hostileGET("/flood")...)
	if err := h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: first, EndStream: true}); err != nil {
		t.Fatal(err)
	}
	sent := len(first)
	for stop := time.Now().Add(10 * time.Second); sent < limit && !h.ended.Load() && time.Now().Before(stop); {
		if err := h.fr.WriteContinuation(1, false, frag); err != nil {
			break // the server hung up
		}
		sent += len(frag) + 9
	}
	if !h.ended.Load() {
		t.Fatalf("the server read %d KiB of CONTINUATION frames without ending the connection", sent>>10)
	}
	_ = h.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	return sent, h.await(t, 1)
}

// CVE-2024-27316 (and Go's CVE-2023-45288): endless CONTINUATION frames
// without END_HEADERS. With fragments that carry fields, the server ends
// the connection at the first fragment past max_header_bytes (64KiB), so
// it never holds more than that; with empty fragments the header list
// never grows and nothing is held, and the connection ends at the
// listener's idle_timeout (2s here), as no stream ever opened. Nothing
// is forwarded; the process's RSS stays put and its goroutines and open
// files return to their values before the flood.
func TestHostileH2ContinuationFlood(t *testing.T) {
	f := hostileStart(t)
	for _, tc := range []struct {
		name     string
		field    []string // the field each fragment carries; none: empty
		maxBytes int      // the most the client may send before the end
		want     http2.ErrCode
	}{
		{"16,000-byte fragments", []string{"x-flood", strings.Repeat("v", 16000)}, 8 << 20, http2.ErrCodeProtocol},
		{"empty fragments", nil, 1 << 30, http2.ErrCodeNo},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := hostileUsageNow(t, f.admin)
			rssBefore := reloadMetric(t, f.admin, "process_resident_memory_bytes")
			h := hostileDialH2(t, f)
			var frag []byte
			if tc.field != nil {
				frag = h.block(tc.field...)
			}
			start := time.Now()
			sent, end := hostileFlood(t, h, frag, 64<<20)
			took := time.Since(start)
			rssAfter := reloadMetric(t, f.admin, "process_resident_memory_bytes")
			t.Logf("the server ended the flood after %d KiB in %v (%v); RSS %.1f -> %.1f MiB",
				sent>>10, took.Round(time.Millisecond), end, rssBefore/(1<<20), rssAfter/(1<<20))
			if end.kind != "goaway" || end.code != tc.want {
				t.Errorf("flood ended with %v, want GOAWAY %v", end, tc.want)
			}
			if sent > tc.maxBytes {
				t.Errorf("the server read %d KiB before it ended the connection, want at most %d", sent>>10, tc.maxBytes>>10)
			}
			// The flood holds at most 64KiB of fields; 16 MiB is far above
			// the RSS noise of a few MiB and far below what an unbounded
			// header list reaches in the same time.
			if grew := rssAfter - rssBefore; grew > 16<<20 {
				t.Errorf("RSS grew by %.1f MiB during the flood", grew/(1<<20))
			}
			if n := len(f.rec.requests()); n != 0 {
				t.Errorf("backend got %d requests", n)
			}
			h.c.Close()
			hostileBackToBaseline(t, f.admin, base)
		})
	}
}

// HTTP/2 rapid reset (CVE-2023-44487) over the TLS listener: streams
// opened and reset at once never run more requests at the backend than
// h2_max_concurrent_streams, and everything they started ends.
func TestHostileH2RapidReset(t *testing.T) {
	const streams = 2000
	f := hostileStart(t)
	base := hostileUsageNow(t, f.admin)
	h := hostileDialH2(t, f)
	sent := 0
	for i := range streams {
		id := uint32(2*i + 1)
		if err := h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: h.block(hostileGET(fmt.Sprintf("/hang/%d", i))...), EndStream: true, EndHeaders: true}); err != nil {
			break // the server hung up
		}
		if err := h.fr.WriteRSTStream(id, http2.ErrCodeCancel); err != nil {
			break
		}
		sent++
	}
	_ = h.c.CloseWrite()
	var goaway *hostileH2Event
	for e := range h.events {
		if e.kind == "goaway" {
			goaway = &e
		}
	}
	if p := f.hang.peak.Load(); p > hostileStreamLimit {
		t.Errorf("%d requests ran at the backend at once, limit %d", p, hostileStreamLimit)
	}
	if goaway != nil && goaway.code != http2.ErrCodeEnhanceYourCalm && goaway.code != http2.ErrCodeNo {
		t.Errorf("%v", goaway)
	}
	t.Logf("sent %d of %d streams; backend saw %d requests, at most %d at once; goaway %v",
		sent, streams, f.hang.seen.Load(), f.hang.peak.Load(), goaway)
	testwait.Until(t, 10*time.Second, "backend requests to end", func() bool { return f.hang.inflight.Load() == 0 })
	h.c.Close()
	hostileBackToBaseline(t, f.admin, base)
}
