package proxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/balancer"
)

// affinityPool is testPool with a policy and affinity set.
func affinityPool(f *fleet, pol balancer.Policy, a balancer.Affinity) PoolConfig {
	return testPool(f, func(pc *PoolConfig) {
		o := pc.Balancer.Options()
		o.Policy, o.Affinity = pol, a
		pc.Balancer.Configure(o)
	})
}

// send makes one GET through c and returns the backend that answered and
// the response's Set-Cookie fields.
func send(t *testing.T, c *http.Client, url string, hdr http.Header) (backend string, setCookie []string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET: %v", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	return resp.Header.Get("X-Backend"), resp.Header.Values("Set-Cookie")
}

func jarClient(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, Transport: &http.Transport{}}
}

var stickyCookieForm = regexp.MustCompile(`^srv=[0-9a-f]{16}; Path=/; Max-Age=3600; HttpOnly$`)

// TestStickyClientsStayThenMoveOnce: under round robin, which would move
// them on every request, each client stays on the backend of its first
// response, which alone set the cookie (opaque: 16 hex digits, never the
// address). When that backend is marked down, or stopped (then the first
// attempt fails and the retry goes to another zone), its clients move
// once, get a new cookie, and stay on their new backend.
func TestStickyClientsStayThenMoveOnce(t *testing.T) {
	for _, how := range []string{"marked down", "stopped"} {
		t.Run(how, func(t *testing.T) {
			f := startFleet(t, 3, nil)
			pc := affinityPool(f, balancer.PolicyRoundRobin, balancer.Affinity{StickyCookie: "srv", StickyTTL: time.Hour})
			px := startProxy(t, pc)
			clients := make([]*http.Client, 6)
			home := make([]string, len(clients))
			for i := range clients {
				clients[i] = jarClient(t)
				for n := range 15 {
					b, sc := send(t, clients[i], px.URL, nil)
					switch {
					case n == 0 && (len(sc) != 1 || !stickyCookieForm.MatchString(sc[0])):
						t.Fatalf("client %d: first response's Set-Cookie %q, want one of the form %s", i, sc, stickyCookieForm)
					case n == 0 && strings.Contains(sc[0], strings.Split(b, ":")[0]):
						t.Fatalf("cookie %q reveals the backend's address %s", sc[0], b)
					case n == 0:
						home[i] = b
					case b != home[i]:
						t.Fatalf("client %d: request %d went to %s, its backend is %s", i, n, b, home[i])
					case len(sc) != 0:
						t.Fatalf("client %d: request %d set %q again", i, n, sc)
					}
				}
			}
			if distinct(home) < 3 {
				t.Fatalf("six clients pinned to %v: round robin should have spread them", home)
			}
			gone := home[0]
			switch how {
			case "marked down":
				pc.Balancer.Backend(gone).SetState(balancer.StateDown)
			case "stopped":
				for _, b := range f.all {
					if b.addr == gone {
						b.refuse()
					}
				}
			}
			for i, c := range clients {
				if home[i] != gone {
					if b, sc := send(t, c, px.URL, nil); b != home[i] || len(sc) != 0 {
						t.Fatalf("client %d of a live backend moved to %s (Set-Cookie %q)", i, b, sc)
					}
					continue
				}
				moved, sc := send(t, c, px.URL, nil)
				if moved == gone || len(sc) != 1 {
					t.Fatalf("client %d: after its backend went, %s with Set-Cookie %q", i, moved, sc)
				}
				for n := range 10 {
					if b, sc := send(t, c, px.URL, nil); b != moved || len(sc) != 0 {
						t.Fatalf("client %d: request %d after the move went to %s (Set-Cookie %q), want %s", i, n, b, sc, moved)
					}
				}
			}
		})
	}
}

func distinct(xs []string) int {
	m := map[string]bool{}
	for _, x := range xs {
		m[x] = true
	}
	return len(m)
}

// TestStickyForgedCookieIsBalanced: a cookie that names no backend (made
// up, or the raw address) is ignored: such requests are balanced by the
// policy and each gets a cookie for the backend that answered.
func TestStickyForgedCookieIsBalanced(t *testing.T) {
	f := startFleet(t, 3, nil)
	px := startProxy(t, affinityPool(f, balancer.PolicyRoundRobin, balancer.Affinity{StickyCookie: "srv"}))
	c := &http.Client{Transport: &http.Transport{}}
	for _, forged := range []string{"0123456789abcdef", f.all[0].addr, "zz", ""} {
		seen := map[string]bool{}
		for range 6 {
			b, sc := send(t, c, px.URL, http.Header{"Cookie": {"srv=" + forged}})
			seen[b] = true
			if len(sc) != 1 || !strings.HasPrefix(sc[0], "srv=") || !strings.HasSuffix(sc[0], "; Path=/; HttpOnly") {
				t.Fatalf("cookie %q: Set-Cookie %q, want a session cookie for the backend used", forged, sc)
			}
		}
		if len(seen) != 3 {
			t.Errorf("cookie %q: 6 requests went to %d backends, want round robin over zone a's 3", forged, len(seen))
		}
	}
}

// TestHashKeyRoutesRequests: under balance hash, a key in a header, a
// cookie or the client's address sends every request with that key to
// one backend of the local zone, keys spread over the zone, a request
// without its key is still served, and X-Forwarded-For does not count as
// the client's address.
func TestHashKeyRoutesRequests(t *testing.T) {
	f := startFleet(t, 3, nil)
	tests := []struct {
		name   string
		a      balancer.Affinity
		header func(user int) http.Header
	}{
		{"header", balancer.Affinity{HashFrom: balancer.HashHeader, HashName: "X-User"}, func(u int) http.Header {
			return http.Header{"X-User": {fmt.Sprint("user-", u)}}
		}},
		{"cookie", balancer.Affinity{HashFrom: balancer.HashCookie, HashName: "sid"}, func(u int) http.Header {
			return http.Header{"Cookie": {fmt.Sprintf("a=1; sid=%d; b=2", u)}}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			px := startProxy(t, affinityPool(f, balancer.PolicyHash, tt.a))
			c := &http.Client{Transport: &http.Transport{}}
			where := map[string]bool{}
			for u := range 30 {
				first, _ := send(t, c, px.URL, tt.header(u))
				where[first] = true
				for range 3 {
					if b, _ := send(t, c, px.URL, tt.header(u)); b != first {
						t.Fatalf("key %d went to %s, then %s", u, first, b)
					}
				}
			}
			for b := range where {
				if !strings.HasPrefix(b, "127.0.1.") {
					t.Errorf("a key went to %s, outside the local zone", b)
				}
			}
			if len(where) != 3 {
				t.Errorf("30 keys went to %d backends, want all 3 of the local zone", len(where))
			}
			send(t, c, px.URL, nil) // no key: least-conn
		})
	}
	t.Run("client address", func(t *testing.T) {
		// Even from a trusted proxy, whose X-Forwarded-For is passed on,
		// the key is the connection's address.
		pc := affinityPool(f, balancer.PolicyHash, balancer.Affinity{HashFrom: balancer.HashClientAddress})
		lc := ListenerConfig{Name: "http", Routes: []Route{{Pool: pc.Name}}, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
		px := startProxyListener(t, lc, pc)
		where := map[string]bool{}
		for i := range 12 {
			local := &net.TCPAddr{IP: net.IPv4(127, 0, 9, byte(i+1))}
			d := &net.Dialer{LocalAddr: local}
			c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, n, a string) (net.Conn, error) {
				return d.DialContext(ctx, n, a)
			}}}
			first, _ := send(t, c, px.URL, nil)
			where[first] = true
			for j := range 4 {
				xff := http.Header{"X-Forwarded-For": {fmt.Sprintf("203.0.113.%d", j)}}
				if b, _ := send(t, c, px.URL, xff); b != first {
					t.Fatalf("client %s went to %s, then %s", local.IP, first, b)
				}
			}
		}
		if len(where) < 2 {
			t.Errorf("12 client addresses all went to %v", where)
		}
	})
}

// TestPolicyChangeTakesEffect: new balancer settings (what a reload
// commits) change how the next request is placed.
func TestPolicyChangeTakesEffect(t *testing.T) {
	f := startFleet(t, 3, nil)
	pc := affinityPool(f, balancer.PolicyLeastConn, balancer.Affinity{})
	px := startProxy(t, pc)
	c := &http.Client{Transport: &http.Transport{}}
	if _, sc := send(t, c, px.URL, nil); len(sc) != 0 {
		t.Fatalf("Set-Cookie %q without sticky", sc)
	}
	o := pc.Balancer.Options()
	o.Policy, o.Affinity = balancer.PolicyHash, balancer.Affinity{HashFrom: balancer.HashHeader, HashName: "X-User", StickyCookie: "srv"}
	pc.Balancer.Configure(o)
	first, sc := send(t, c, px.URL, http.Header{"X-User": {"u1"}})
	if len(sc) != 1 {
		t.Fatalf("Set-Cookie %q after sticky was turned on", sc)
	}
	for range 5 {
		if b, _ := send(t, c, px.URL, http.Header{"X-User": {"u1"}}); b != first {
			t.Fatalf("hashed key went to %s, then %s", first, b)
		}
	}
}

// TestCookieValue reads one cookie among others, quoted or not.
func TestCookieValue(t *testing.T) {
	h := http.Header{"Cookie": {"a=1; srv=\"00ab\"", "sid=x"}}
	for name, want := range map[string]string{"a": "1", "srv": "00ab", "sid": "x", "nope": "", "sr": ""} {
		if got := cookieValue(h, name); got != want {
			t.Errorf("cookie %q = %q, want %q", name, got, want)
		}
	}
	if pin := parsePin(formatPin(42)); pin != 42 {
		t.Errorf("pin 42 read back as %d", pin)
	}
}
