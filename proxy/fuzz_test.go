package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/balancer"
	"golang.org/x/net/http/httpguts"
)

// parseFuzzRoutes reads up to 8 routes, one a line, "host|prefix".
func parseFuzzRoutes(spec string) []Route {
	var routes []Route
	for i, line := range strings.Split(spec, "\n") {
		if i == 8 {
			break
		}
		host, prefix, _ := strings.Cut(line, "|")
		routes = append(routes, Route{Host: host, PathPrefix: prefix, Pool: fmt.Sprint(i)})
	}
	return routes
}

// referenceMatch is the routing rule written as plainly as possible: the
// index of the route that serves host and path, or -1. Routes for the exact
// host come first, then wildcards (longest suffix first), then host-less
// routes; within each, the longest path prefix, and the earliest route on
// a tie.
func referenceMatch(routes []Route, hostport, path string) int {
	host := strings.ToLower(stripPort(hostport))
	best := func(ok func(Route) bool, rank func(Route) int) int {
		found, bestRank := -1, -1
		for i, rt := range routes {
			if ok(rt) && strings.HasPrefix(path, rt.PathPrefix) && rank(rt) > bestRank {
				found, bestRank = i, rank(rt)
			}
		}
		return found
	}
	isWild := func(rt Route) bool { return strings.HasPrefix(strings.ToLower(rt.Host), "*.") }
	if i := best(func(rt Route) bool {
		return rt.Host != "" && !isWild(rt) && strings.ToLower(rt.Host) == host
	}, func(rt Route) int { return len(rt.PathPrefix) }); i >= 0 {
		return i
	}
	if i := best(func(rt Route) bool {
		if !isWild(rt) {
			return false
		}
		suffix := strings.ToLower(rt.Host)[1:]
		return len(host) > len(suffix) && strings.HasSuffix(host, suffix)
	}, func(rt Route) int {
		// Longer suffix first, then longer prefix; prefixes are far
		// shorter than 1<<32.
		return len(strings.ToLower(rt.Host))<<32 + len(rt.PathPrefix)
	}); i >= 0 {
		return i
	}
	return best(func(rt Route) bool { return rt.Host == "" }, func(rt Route) int { return len(rt.PathPrefix) })
}

// FuzzRouterMatch: matching never panics and picks the route the plain
// reference picks.
func FuzzRouterMatch(f *testing.F) {
	f.Add("api.example.com|/v1/\n*.example.com|\n|/", "api.example.com:8443", "/v1/x")
	f.Add("*.example.com|/a\n*.b.example.com|\n|", "x.b.example.com.", "/a/b")
	f.Add("API.example.com|\n|/other/", "api.EXAMPLE.com", "/other/")
	f.Add("[::1]|/\n*.|", "[::1]:443", "/")
	f.Add("*.|\n*.a|", "b.a", "")
	f.Fuzz(func(t *testing.T, spec, host, path string) {
		routes := parseFuzzRoutes(spec)
		pools := map[string]*Pool{}
		for _, rt := range routes {
			pools[rt.Pool] = &Pool{PoolConfig: PoolConfig{Name: rt.Pool}}
		}
		r, err := newRouter(routes, pools, nil)
		if err != nil {
			t.Fatal(err)
		}
		got := "none"
		if c := r.match(host, path); c != nil {
			got = c.pool.Name
		}
		want := "none"
		if i := referenceMatch(routes, host, path); i >= 0 {
			want = routes[i].Pool
		}
		if got != want {
			t.Fatalf("routes %+v, host %q, path %q: router picked %s, reference %s", routes, host, path, got, want)
		}
	})
}

// FuzzDecide checks the retry decision's properties over every input: it
// retries exactly when every condition holds, and never replays an unsafe
// request the backend may have seen.
func FuzzDecide(f *testing.F) {
	f.Add("GET", false, true, false, uint8(CauseTimeout), 1, int64(time.Second), true, 3, uint16(0xffff))
	f.Add("POST", false, true, false, uint8(CauseConnect), 1, int64(time.Second), true, 3, uint16(0xffff))
	f.Add("POST", true, true, false, uint8(CauseReset), 1, int64(time.Second), true, 3, uint16(0xffff))
	f.Add("get", false, true, false, uint8(CauseTimeout), 1, int64(time.Second), true, 3, uint16(0xffff))
	f.Add("PUT", false, true, true, uint8(CauseStatus), 2, int64(0), false, 2, uint16(0x0f))
	f.Add("DELETE", false, false, false, uint8(200), 0, int64(-1), true, 0, uint16(0))
	f.Add("GET", false, true, false, uint8(CauseOut), 1, int64(time.Second), true, 3, uint16(0))
	f.Add("POST", false, true, false, uint8(CauseUnsent), 1, int64(time.Second), true, 3, uint16(0))
	f.Add("GET", true, true, false, uint8(CauseCancelled), 1, int64(time.Second), true, 3, uint16(0xffff))
	f.Fuzz(func(t *testing.T, method string, key, replayable, started bool, cause uint8, tries int, left int64, budget bool, attempts int, on uint16) {
		p := RetryPolicy{Attempts: attempts}
		for c := range numCauses {
			p.On[c] = on&(1<<c) != 0
		}
		a := Attempt{Method: method, HasIdempotencyKey: key, BodyReplayable: replayable, ResponseStarted: started,
			Cause: Cause(cause), Tries: tries, TimeLeft: time.Duration(left), BudgetAllows: budget}
		v := Decide(&p, a)
		_ = v.String()
		_ = a.Cause.String()
		// A backend taken out, or an attempt that never left, is always a
		// reason (whatever retry.on says); a cancelled attempt (it lost a
		// race) never is. The backend never saw a request that failed to
		// connect or was never sent.
		unseen := a.Cause == CauseConnect || a.Cause == CauseUnsent
		known := a.Cause != CauseNone && a.Cause != CauseClientGone && a.Cause != CauseCancelled && a.Cause < numCauses
		reason := known && (p.On[a.Cause] || a.Cause == CauseOut || a.Cause == CauseUnsent)
		safe := Idempotent(method) || key || unseen
		all := reason && !started && safe && replayable && tries < attempts && left > 0 && budget
		if (v == Retry) != all {
			t.Fatalf("%+v with policy %+v: verdict %v, but every condition holding is %v", a, p, v, all)
		}
		if v == Retry && !Idempotent(method) && !key && !unseen {
			t.Fatalf("%+v: replays an unsafe request the backend may have seen", a)
		}
		switch method {
		case "GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE":
			if !Idempotent(method) {
				t.Fatalf("%s not idempotent", method)
			}
		default:
			if Idempotent(method) {
				t.Fatalf("%q taken as idempotent", method)
			}
		}
	})
}

// capturingTransport answers every attempt with 200 and keeps the
// outbound request's header. It stands in for a backend only in the
// header fuzz target, which checks pure header logic; the same rules are
// checked over real HTTP in TestForwardingHeaders.
type capturingTransport struct{ got http.Header }

func (c *capturingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.got = r.Header.Clone()
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, r.Body)
		_ = r.Body.Close()
	}
	return &http.Response{StatusCode: 200, Header: http.Header{}, Body: http.NoBody, Request: r}, nil
}

// hopByHop are the RFC 9110 section 7.6.1 fields (and Proxy-Connection,
// Keep-Alive, Proxy-Authenticate and Proxy-Authorization, which RFC 7230
// named too); none may reach a backend from a client.
var hopByHop = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// FuzzHeaderSanitation sends an arbitrary header block, parsed as the
// server parses it, through the proxy's request path: the backend never
// gets a hop-by-hop header, a header the client's Connection names, a
// client's forwarding headers or client-subject header.
func FuzzHeaderSanitation(f *testing.F) {
	f.Add("Connection: keep-alive, X-Secret\r\nX-Secret: s\r\nKeep-Alive: timeout=5\r\n")
	f.Add("X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil\r\nForwarded: for=6.6.6.6\r\n")
	f.Add("X-Forwarded-Port: 443\r\nX-Forwarded-Prefix: /admin\r\nX-Real-Ip: 6.6.6.6\r\nX-Client-Subject: CN=admin\r\n")
	f.Add("Connection: Upgrade\r\nUpgrade: websocket\r\nTe: trailers, gzip\r\nTrailer: X-T\r\n")
	f.Add("X_Forwarded_For: 6.6.6.6\r\nx_real_ip: 6.6.6.6\r\nFORWARDED: for=x\r\nX-Forwarded_Proto: https\r\n")
	f.Add("Proxy-Connection: keep-alive\r\nProxy-Authorization: Basic eA==\r\nConnection: x-forwarded-for, X-Request-Id\r\nX-Request-Id: abc\r\n")
	f.Add("X_Client_Subject: CN=admin\r\nx-client_SUBJECT: CN=root\r\nConnection: Upgrade\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n")
	f.Fuzz(func(t *testing.T, headers string) {
		raw := "GET /p HTTP/1.1\r\nHost: app.example\r\n" + headers + "\r\n"
		in, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
		if err != nil || !serverAccepts(in) {
			return // the server answers 400 and nothing is forwarded
		}
		in.RemoteAddr = "127.0.0.1:40000" // an untrusted peer
		ct := &capturingTransport{}
		bp := balancer.NewPool("app", balancer.Options{})
		bp.Update([]balancer.Spec{{Address: "127.0.1.1:1", Zone: "a"}})
		s := NewServer(t.Context(), Options{})
		g, err := s.Build(Config{
			Listeners: []ListenerConfig{{Name: "http", Routes: []Route{{Pool: "app"}}, ClientSubjectHeader: "X-Client-Subject"}},
			Pools:     []PoolConfig{{Name: "app", Balancer: bp, Transport: ct, Retry: RetryPolicy{Attempts: 1, MaxBody: 1 << 10}}},
		})
		if err != nil {
			t.Fatal(err)
		}
		s.Publish(g)
		// The forwarder cleans the request's header map in place: judge
		// what the backend got against the header as the client sent it.
		sent := in.Header.Clone()
		w := httptest.NewRecorder()
		s.Handler("http").ServeHTTP(w, in)
		if ct.got == nil {
			if w.Code == 200 {
				t.Fatalf("200 without an attempt")
			}
			return // answered by the proxy (400, 413...): nothing forwarded
		}
		out := ct.got
		upgrade := ""
		if httpguts.HeaderValuesContainsToken(sent["Connection"], "Upgrade") && !strings.EqualFold(sent.Get("Upgrade"), "h2c") {
			upgrade = sent.Get("Upgrade") // an h2c upgrade is never passed on
		}
		for _, h := range hopByHop {
			v, ok := out[h]
			switch {
			case !ok:
			case h == "Te" && len(v) == 1 && v[0] == "trailers":
			case upgrade != "" && h == "Connection" && len(v) == 1 && v[0] == "Upgrade":
			case upgrade != "" && h == "Upgrade" && len(v) == 1 && v[0] == upgrade:
			default:
				t.Fatalf("backend got hop-by-hop %s: %q\nfrom %q", h, v, headers)
			}
		}
		ours := map[string]bool{"X-Forwarded-For": true, "X-Forwarded-Proto": true, "X-Forwarded-Host": true, "X-Request-Id": true, "Connection": true, "Upgrade": true, "Te": true}
		for _, v := range sent["Connection"] {
			for tok := range strings.SplitSeq(v, ",") {
				name := http.CanonicalHeaderKey(strings.TrimSpace(tok))
				if _, ok := out[name]; ok && !ours[name] {
					t.Fatalf("backend got %s, which the client's Connection names\nfrom %q", name, headers)
				}
			}
		}
		for name, v := range out {
			switch {
			case name == "X-Forwarded-For" && (len(v) != 1 || v[0] != "127.0.0.1"),
				name == "X-Forwarded-Proto" && (len(v) != 1 || v[0] != "http"),
				name == "X-Forwarded-Host" && (len(v) != 1 || v[0] != "app.example"),
				forwardingName(name) && !ours[name],
				equalFold(name, "x-client-subject"):
				t.Fatalf("backend got the client's %s: %q\nfrom %q", name, v, headers)
			}
		}
		if id := out.Get("X-Request-Id"); id == "" || len(id) > maxRequestIDLen {
			t.Fatalf("backend got X-Request-Id %q", id)
		}
	})
}

// forwardingName is the fuzz target's own statement of which names a
// backend may take for its proxy's forwarding headers.
func forwardingName(name string) bool {
	n := strings.ToLower(strings.ReplaceAll(name, "_", "-"))
	return strings.HasPrefix(n, "x-forwarded-") || n == "x-real-ip" || n == "forwarded"
}

// serverAccepts applies the checks http.Server makes beyond
// http.ReadRequest (server.go, readRequest): one valid Host, valid field
// names and values. Requests it fails get 400 from the server and never
// reach the handler (TestHostileRequests checks that over a socket).
func serverAccepts(r *http.Request) bool {
	if len(r.Header["Host"]) > 1 || !httpguts.ValidHostHeader(r.Host) {
		return false
	}
	for k, vv := range r.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return false
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return false
			}
		}
	}
	return true
}
