package proxyproto

import (
	"bytes"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestReadHeaders(t *testing.T) {
	v4 := Header{Source: netip.MustParseAddrPort("203.0.113.7:51000"), Destination: netip.MustParseAddrPort("10.0.0.1:443")}
	v6 := Header{Source: netip.MustParseAddrPort("[2001:db8::7]:51000"), Destination: netip.MustParseAddrPort("[2001:db8::1]:443")}
	for _, tc := range []struct {
		name string
		wire []byte
		want Header
		err  string
	}{
		{"v1 tcp4", v4.AppendV1(nil), v4, ""},
		{"v1 tcp6", v6.AppendV1(nil), v6, ""},
		{"v1 unknown", []byte("PROXY UNKNOWN\r\n"), Header{Local: true}, ""},
		{"v1 unknown with addresses", []byte("PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n"), Header{Local: true}, ""},
		{"v2 tcp4", v4.AppendV2(nil), v4, ""},
		{"v2 tcp6", v6.AppendV2(nil), v6, ""},
		{"v2 local", Header{Local: true}.AppendV2(nil), Header{Local: true}, ""},
		{"v2 with a TLV", append(withLen(v4.AppendV2(nil), 12+5), 0x04, 0, 2, 'o', 'k'), v4, ""},
		{"not a header", []byte("GET / HTTP/1.1\r\n\r\n"), Header{}, "no PROXY header"},
		{"v1 family mismatch", []byte("PROXY TCP4 ::1 ::2 1 2\r\n"), Header{}, "is not TCP4"},
		{"v1 bad port", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 99999 2\r\n"), Header{}, "bad port"},
		{"v1 too long", []byte("PROXY TCP4 " + strings.Repeat("1", 120) + "\r\n"), Header{}, "longer than 107"},
		{"v1 without its end", []byte("PROXY TCP4 1.2.3.4"), Header{}, "bad v1 line"},
		{"v2 version 3", append(append([]byte{}, v2sig...), 0x31, 0x11, 0, 0), Header{}, "version 3"},
		{"v2 short addresses", append(append([]byte{}, v2sig...), 0x21, 0x11, 0, 4, 1, 2, 3, 4), Header{}, "short"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// What follows the header is the connection's own: Read takes
			// not a byte of it.
			r := bytes.NewReader(append(append([]byte{}, tc.wire...), "GET / HTTP/1.1\r\n"...))
			h, err := Read(r)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Read = %+v, %v; want an error with %q", h, err, tc.err)
				}
				return
			}
			if err != nil || h != tc.want {
				t.Fatalf("Read = %+v, %v; want %+v", h, err, tc.want)
			}
			if rest, _ := io.ReadAll(r); string(rest) != "GET / HTTP/1.1\r\n" {
				t.Errorf("after the header: %q", rest)
			}
		})
	}
}

// withLen rewrites a v2 header's length field.
func withLen(b []byte, n int) []byte {
	b[14], b[15] = byte(n>>8), byte(n)
	return b
}

// The listener reads a trusted peer's header on a goroutine of its own: a
// trusted peer that sends nothing holds up no other connection, and a
// connection from anyone else is handed on as it is.
func TestListener(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	trusted := func(a netip.Addr) bool { return a == netip.MustParseAddr("127.0.0.1") }
	l := NewListener(inner, trusted, 500*time.Millisecond, nil)
	defer l.Close()
	addr := inner.Addr().String()

	silent, err := net.Dial("tcp", addr) // a TCP health check: connects, says nothing
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	h := Header{Source: netip.MustParseAddrPort("198.51.100.9:4000"), Destination: netip.MustParseAddrPort("192.0.2.1:80")}
	if _, err := c.Write(append(h.AppendV2(nil), "hello"...)); err != nil {
		t.Fatal(err)
	}
	got, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	if got.RemoteAddr().String() != "198.51.100.9:4000" || got.LocalAddr().String() != "192.0.2.1:80" {
		t.Errorf("accepted %v -> %v, want the header's addresses", got.RemoteAddr(), got.LocalAddr())
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(got, buf); err != nil || string(buf) != "hello" {
		t.Errorf("after the header read %q, %v", buf, err)
	}
	_ = got.Close()

	// The silent one is closed once its header is late.
	_ = silent.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := silent.Read(buf); err == nil {
		t.Error("a trusted peer that sent no header was not closed")
	}

	// A peer that is not trusted: handed on as it is, header and all.
	other, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatalf("127.0.0.2 (another loopback address) is needed: %v", err)
	}
	_ = other.Close()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
	u, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	if _, err := u.Write(h.AppendV1(nil)); err != nil {
		t.Fatal(err)
	}
	got, err = l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	if ap, _ := AddrPortOf(got.RemoteAddr()); ap.Addr() != netip.MustParseAddr("127.0.0.2") {
		t.Errorf("an untrusted peer's connection came with address %v", got.RemoteAddr())
	}
	line := make([]byte, 5)
	if _, err := io.ReadFull(got, line); err != nil || string(line) != "PROXY" {
		t.Errorf("an untrusted peer's header was consumed: %q", line)
	}

	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Accept(); err == nil {
		t.Error("Accept after Close succeeded")
	}
}
