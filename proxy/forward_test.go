package proxy

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/internal/testwait"
)

func TestCleanQuery(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"a=1&b=2", "a=1&b=2"},             // parses: passed on as it came
		{"b=2&a=%41", "b=2&a=%41"},         // escapes kept, order kept
		{"a=1;b=2&c=3", "c=3"},             // ';' splits differently in different servers
		{"a=%zz&c=3", "c=3"},               // a bad escape
		{"c=3&a=%4", "c=3"},                // an escape cut short
		{"d=4&a=1;admin=1", "d=4"},         // the smuggled parameter goes with its pair
		{"x=%", ""},                        // nothing left
		{"q=caf%C3%A9", "q=caf%C3%A9"},     // UTF-8 escapes are fine
		{"k&k=&=v", "k&k=&=v"},             // odd but parseable
		{"a=1&b=2;&c=%zz", "a=1"},          // several bad pairs
		{"z=1&a=1;b", "z=1"},               // re-encoded: sorted by key
		{"b=1&a=2&c=%", "a=2&b=1"},         // re-encoded: sorted by key
		{"sp=a+b&a=%", "sp=a+b"},           // re-encoded spaces stay '+'
		{"e=%e2%82%ac&x=;", "e=%E2%82%AC"}, // re-encoded escapes are upper case
	} {
		if got := cleanQuery(tc.in); got != tc.want {
			t.Errorf("cleanQuery(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	many := strings.Repeat("a=1&", maxQueryParams) + "b=2"
	if got := cleanQuery(many); got == many {
		t.Errorf("a query of %d parameters passed as it came", maxQueryParams+1)
	}
}

// A query that backends could read differently from the proxy reaches the
// backend with only the parameters that parse.
func TestQueryCleanedOnTheWire(t *testing.T) {
	b := startBackend(t, "127.0.1.1", "a", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.URL.RawQuery)
	}))
	px := startProxy(t, singleBackendPool(b.addr, "http1"))
	for in, want := range map[string]string{
		"a=1&b=2":           "a=1&b=2",
		"user=me;admin=1&x": "x=",
		"c=%zz&d=4":         "d=4",
	} {
		resp, err := http.Get(px.URL + "/q?" + in)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(got) != want {
			t.Errorf("backend got query %q for %q, want %q", got, in, want)
		}
	}
}

// Trailers the backend announced, and those it did not, reach the client
// after the body.
func TestTrailersForwarded(t *testing.T) {
	b := startBackend(t, "127.0.1.1", "a", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Checksum")
		_, _ = io.WriteString(w, "body")
		w.Header().Set("X-Checksum", "abc")
		w.Header().Set(http.TrailerPrefix+"X-Late", "late")
	}))
	px := startProxy(t, singleBackendPool(b.addr, "http1"))
	resp, err := http.Get(px.URL + "/t")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || string(body) != "body" {
		t.Fatalf("body = %q, %v", body, err)
	}
	if got := resp.Trailer.Get("X-Checksum"); got != "abc" {
		t.Errorf("announced trailer X-Checksum = %q, want abc (trailers %v)", got, resp.Trailer)
	}
	if got := resp.Trailer.Get("X-Late"); got != "late" {
		t.Errorf("unannounced trailer X-Late = %q, want late (trailers %v)", got, resp.Trailer)
	}
}

// A 103 from an HTTP/2 backend reaches the client through net/http's
// transport, which reports it from a goroutine of its own.
func TestEarlyHintsOverH2C(t *testing.T) {
	addr := serveH1OrH2C(t, "h2c", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</a.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		_, _ = io.WriteString(w, "ok")
	}))
	px := startProxy(t, singleBackendPool(addr, "h2c"))
	var hints []string
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		hints = append(hints, http.StatusText(code)+": "+h.Get("Link"))
		return nil
	}}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", px.URL+"/", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "ok" {
		t.Fatalf("final answer %d %q", resp.StatusCode, body)
	}
	if len(hints) != 1 || hints[0] != "Early Hints: </a.css>; rel=preload" {
		t.Fatalf("1xx the client saw: %q, want one 103 with its Link", hints)
	}
	if resp.Header.Get("Link") != "" {
		t.Errorf("the 103's Link leaked into the final answer")
	}
}

// A request to switch to a protocol with a name that is not printable is
// refused with 400, and a backend that switches to a protocol the client
// did not ask for gets the client a 502, not a tunnel.
func TestUpgradeChecks(t *testing.T) {
	b := startBackend(t, "127.0.1.1", "a", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
		_ = brw.Flush()
	}))
	px := startProxy(t, singleBackendPool(b.addr, "http1"))
	for _, tc := range []struct {
		upgrade string
		want    int
	}{
		{"caf\xc3\xa9", http.StatusBadRequest},
		{"websocket", http.StatusBadGateway},
	} {
		c, err := net.Dial("tcp", strings.TrimPrefix(px.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: app.example.com\r\nConnection: Upgrade\r\nUpgrade: "+tc.upgrade+"\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		c.Close()
		if err != nil {
			t.Fatalf("upgrade to %q: %v", tc.upgrade, err)
		}
		if resp.StatusCode != tc.want {
			t.Errorf("upgrade to %q: status %d, want %d", tc.upgrade, resp.StatusCode, tc.want)
		}
	}
}

// Bytes a client sends right behind its upgrade request, in the same
// segment, reach the backend once the protocol is switched: the server
// has read them into its buffer, and the tunnel starts from there.
func TestTunnelKeepsBytesSentWithTheUpgrade(t *testing.T) {
	b := startBackend(t, "127.0.1.1", "a", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		_ = brw.Flush()
		line, err := brw.ReadString('\n')
		if err != nil {
			return
		}
		_, _ = brw.WriteString("echo: " + line)
		_ = brw.Flush()
	}))
	px := startProxy(t, singleBackendPool(b.addr, "http1"))
	c, err := net.Dial("tcp", strings.TrimPrefix(px.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	_, _ = io.WriteString(c, "GET /up HTTP/1.1\r\nHost: app.example.com\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nearly bytes\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade answer %v, %v", resp, err)
	}
	line, err := br.ReadString('\n')
	if err != nil || line != "echo: early bytes\n" {
		t.Fatalf("after the switch the backend answered %q, %v; want the bytes sent with the upgrade echoed", line, err)
	}
}

// A backend that answers a request that asked for no upgrade with 101
// gets the client a 502, not the client's connection as a raw pipe: the
// client's next request never reaches that backend connection unrouted.
func TestUnrequested101Refused(t *testing.T) {
	after := make(chan string, 1)
	backend := serveRaw(t, "127.0.1.1", func(c net.Conn) {
		br := bufio.NewReader(c)
		if _, err := readHead(br); err != nil {
			return
		}
		_, _ = io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\n\r\n") // no Upgrade: to nothing asked for
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
		line, _ := br.ReadString('\n')
		after <- line
	})
	addr := startEdge(t, defaultEdgeLimits, ListenerConfig{Name: "http", Routes: []Route{{Pool: "app"}}}, singleBackendPool(backend, "http1"))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.WriteString(c, "GET /a HTTP/1.1\r\nHost: app.example\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("status %d for a 101 nobody asked for, want 502", resp.StatusCode)
	}
	_, _ = io.WriteString(c, "GET /admin HTTP/1.1\r\nHost: other.example\r\n\r\n")
	if line := <-after; line != "" {
		t.Fatalf("the backend read %q on the connection it switched", line)
	}
}

// A backend's status below 100 (HTTP/1.1's parser takes 000 to 099) gets
// the client a 502 and leaves nothing in flight on the backend.
func TestStatusBelow100Refused(t *testing.T) {
	backend := rawBackendFunc(t, writes("HTTP/1.1 099 Odd\r\nContent-Length: 0\r\n\r\n"))
	pc := singleBackendPool(backend, "http1")
	addr := startEdge(t, defaultEdgeLimits, ListenerConfig{Name: "http", Routes: []Route{{Pool: "app"}}}, pc)
	res := sendRaw(t, addr, "GET /a HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\n\r\n", false)
	if res.resp == nil || res.resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("answer %+v to a status of 099, want 502", res.resp)
	}
	b := pc.Balancer.Backends()[0]
	testwait.Until(t, 5*time.Second, "the backend's in-flight count back to 0", func() bool { return b.InFlight() == 0 })
}

// An h2c upgrade is not passed on: it would open an HTTP/2 connection from
// the client straight to the backend. The request goes on as a plain one.
func TestH2CUpgradeNotForwarded(t *testing.T) {
	b := startBackend(t, "127.0.1.1", "a", echoHeaders)
	addr := startEdge(t, defaultEdgeLimits, ListenerConfig{Name: "http", Routes: []Route{{Pool: "app"}}}, singleBackendPool(b.addr, "http1"))
	res := sendRaw(t, addr, "GET /a HTTP/1.1\r\nHost: app.example\r\nConnection: Upgrade, HTTP2-Settings, close\r\n"+
		"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n", false)
	if res.resp == nil || res.resp.StatusCode != http.StatusOK {
		t.Fatalf("answer %+v, want the backend's 200", res.resp)
	}
	var got http.Header
	if err := json.Unmarshal([]byte(res.body), &got); err != nil {
		t.Fatalf("backend's echo %q: %v", res.body, err)
	}
	for _, name := range []string{"Upgrade", "Connection", "Http2-Settings"} {
		if v, ok := got[name]; ok {
			t.Errorf("backend got %s: %q", name, v)
		}
	}
}

// The client-subject field is the proxy's to set: a client's own never
// reaches the backend, in any spelling.
func TestClientSubjectSpoofsDropped(t *testing.T) {
	b := startBackend(t, "127.0.1.1", "a", echoHeaders)
	lc := ListenerConfig{Name: "http", Routes: []Route{{Pool: "app"}}, ClientSubjectHeader: "X-Client-Subject"}
	addr := startEdge(t, defaultEdgeLimits, lc, singleBackendPool(b.addr, "http1"))
	res := sendRaw(t, addr, "GET /a HTTP/1.1\r\nHost: app.example\r\nX-Client-Subject: CN=a\r\nX_Client_Subject: CN=b\r\n"+
		"x_client-SUBJECT: CN=c\r\nConnection: close\r\n\r\n", false)
	if res.resp == nil || res.resp.StatusCode != http.StatusOK {
		t.Fatalf("answer %+v, want the backend's 200", res.resp)
	}
	var got http.Header
	if err := json.Unmarshal([]byte(res.body), &got); err != nil {
		t.Fatalf("backend's echo %q: %v", res.body, err)
	}
	for name, v := range got {
		if equalFold(name, "x-client-subject") {
			t.Errorf("backend got the client's %s: %q", name, v)
		}
	}
}

// A streamed answer whose first bytes come late has its head reach the
// client first: an event stream always, and a body of unknown length (a
// long poll, newline-delimited JSON) when its first bytes have not come
// with its head.
func TestStreamHeadBeforeFirstBytes(t *testing.T) {
	for _, tc := range []struct{ protocol, contentType, first string }{
		// From an HTTP/2 backend only the content type tells.
		{"h2c", "text/event-stream; charset=utf-8", "data: one\n"},
		{"http1", "text/event-stream", "data: one\n"},
		{"http1", "application/x-ndjson", "{}\n"},
	} {
		t.Run(tc.protocol+" "+tc.contentType, func(t *testing.T) {
			first := make(chan struct{})
			addr := serveH1OrH2C(t, tc.protocol, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tc.contentType)
				w.WriteHeader(http.StatusOK)
				w.(http.Flusher).Flush()
				select {
				case <-first:
				case <-r.Context().Done():
					return
				}
				_, _ = io.WriteString(w, tc.first+"\n")
			}))
			px := startProxy(t, singleBackendPool(addr, tc.protocol))
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "GET", px.URL+"/stream", nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("no response head while the stream waits for its first bytes: %v", err)
			}
			defer resp.Body.Close()
			close(first)
			line, err := bufio.NewReader(resp.Body).ReadString('\n')
			if err != nil || line != tc.first {
				t.Fatalf("first line = %q, %v; want %q", line, err, tc.first)
			}
		})
	}
}

// serveH1OrH2C serves h on 127.0.1.1 over HTTP/1.1 or, for "h2c", HTTP/2
// without TLS, until the test ends, and returns the address.
func serveH1OrH2C(t *testing.T, protocol string, h http.Handler) string {
	t.Helper()
	var p http.Protocols
	p.SetHTTP1(protocol != "h2c")
	p.SetUnencryptedHTTP2(protocol == "h2c")
	srv := &http.Server{Protocols: &p, Handler: h, ReadHeaderTimeout: 5 * time.Second}
	ln, err := net.Listen("tcp", "127.0.1.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}
