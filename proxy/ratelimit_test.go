package proxy

import (
	"net/http"
	"net/netip"
	"runtime"
	"strconv"
	"testing"
	"time"
)

func TestLimiterBucket(t *testing.T) {
	l := newLimiter(RateLimit{Rate: 2, Burst: 3, Key: "route", MaxKeys: 100})
	at := 10 * time.Second
	for i := range 3 {
		if ok, _ := l.allow("", at); !ok {
			t.Fatalf("request %d of a burst of 3 refused", i+1)
		}
	}
	ok, wait := l.allow("", at)
	if ok || wait != 500*time.Millisecond {
		t.Fatalf("4th at once = %v, wait %v; want refused, 500ms (2 a second)", ok, wait)
	}
	if ok, _ := l.allow("", at+499*time.Millisecond); ok {
		t.Fatal("a token before it refilled")
	}
	if ok, _ := l.allow("", at+501*time.Millisecond); !ok {
		t.Fatal("no token after it refilled")
	}
	if got := retryAfter(500 * time.Millisecond); got != "1" {
		t.Errorf("Retry-After for 500ms = %q, want 1", got)
	}
	if got := retryAfter(2100 * time.Millisecond); got != "3" {
		t.Errorf("Retry-After for 2.1s = %q, want 3", got)
	}
}

// A flood of 100,000 distinct keys keeps at most max_keys buckets and
// little memory, keys seen once expire once refilled, and a key that is
// over its limit stays limited through the flood when it is not dropped.
func TestLimiterBoundedUnderAFlood(t *testing.T) {
	const maxKeys = 4096
	l := newLimiter(RateLimit{Rate: 10, Burst: 5, Key: "client_address", MaxKeys: maxKeys})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	at := time.Second
	for i := range 100_000 {
		at += 10 * time.Microsecond // 100k keys in one second: none refills
		l.allow("10."+strconv.Itoa(i>>16)+"."+strconv.Itoa(i>>8&255)+"."+strconv.Itoa(i&255), at)
		if n := l.size(); i%1000 == 0 && n > maxKeys {
			t.Fatalf("%d buckets after %d keys, above max_keys %d", n, i+1, maxKeys)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	grew := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("%d buckets after 100,000 keys; heap grew %d KiB", l.size(), grew>>10)
	if l.size() > maxKeys {
		t.Fatalf("%d buckets, above max_keys %d", l.size(), maxKeys)
	}
	if grew > 4<<20 {
		t.Errorf("heap grew %d KiB for at most %d buckets", grew>>10, maxKeys)
	}
	// A second later every bucket has refilled: the next new keys find
	// them gone (a full bucket is the same as none).
	at += time.Second
	for i := range maxKeys {
		l.allow("fresh-"+strconv.Itoa(i), at)
	}
	if n := l.size(); n > maxKeys {
		t.Fatalf("%d buckets after the old ones expired", n)
	}
	for i := range l.shards {
		for k := range l.shards[i].buckets {
			if len(k) < 6 || k[:6] != "fresh-" {
				t.Fatalf("old key %q kept after it refilled while new keys needed room", k)
			}
		}
	}
}

// The client address counted is the peer's, or behind a trusted proxy
// the nearest untrusted address in X-Forwarded-For.
func TestClientAddress(t *testing.T) {
	l := &listener{ListenerConfig: ListenerConfig{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}}
	for _, tc := range []struct {
		name, remote string
		xff          []string
		want         string
	}{
		{"direct", "192.0.2.1:1234", nil, "192.0.2.1"},
		{"direct, its own xff ignored", "192.0.2.1:1234", []string{"198.51.100.7"}, "192.0.2.1"},
		{"trusted proxy", "10.1.1.1:1234", []string{"198.51.100.7"}, "198.51.100.7"},
		{"two trusted hops", "10.1.1.1:1234", []string{"203.0.113.9, 198.51.100.7, 10.2.2.2"}, "198.51.100.7"},
		{"two fields", "10.1.1.1:1234", []string{"203.0.113.9", "10.2.2.2"}, "203.0.113.9"},
		{"garbage stops the walk", "10.1.1.1:1234", []string{"198.51.100.7, nonsense, 10.2.2.2"}, "10.2.2.2"},
		{"trusted proxy without xff", "10.1.1.1:1234", nil, "10.1.1.1"},
		{"ipv6 peer", "[2001:db8::1]:443", nil, "2001:db8::1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &http.Request{RemoteAddr: tc.remote, Header: http.Header{}}
			if tc.xff != nil {
				r.Header["X-Forwarded-For"] = tc.xff
			}
			if got := l.clientAddress(r); got != tc.want {
				t.Errorf("clientAddress = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestSwapPrefix(t *testing.T) {
	for _, tc := range []struct {
		prefix, replace string
		strip           bool
		in, want        string
	}{
		{"/api", "", true, "/api/users", "/users"},
		{"/api", "", true, "/api", "/"},
		{"/api/", "", true, "/api/users", "/users"},
		{"/api", "/v2", false, "/api/users", "/v2/users"},
		{"/api/", "/v2/", false, "/api/users", "/v2/users"},
		{"/api", "/", false, "/api/users", "/users"},
		{"/api", "/v2", false, "/other", "/other"},
		{"/api/", "/v2", false, "/api/users", "/v2/users"},
		{"/api/", "/v2", false, "/api/", "/v2"},
	} {
		rr := &routeRules{prefix: tc.prefix, strip: tc.strip, replace: tc.replace}
		if got := rr.swapPrefix(tc.in); got != tc.want {
			t.Errorf("prefix %q replace %q strip %v: %q -> %q, want %q", tc.prefix, tc.replace, tc.strip, tc.in, got, tc.want)
		}
	}
}
