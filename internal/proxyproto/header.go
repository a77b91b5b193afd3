// Package proxyproto reads and writes the PROXY protocol header (versions
// 1 and 2, https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt)
// by which a load balancer in front tells the proxy whom a connection is
// from, and the proxy tells its backends. It imports nothing of ours.
package proxyproto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// Header is what a PROXY header says of a connection: the client's
// address and the address it connected to. Local is set for a header that
// carries none (v1 UNKNOWN, v2 LOCAL: a health check of the load balancer
// itself): the connection's own addresses stand.
type Header struct {
	Source, Destination netip.AddrPort
	Local               bool
}

// v2sig starts every version 2 header.
var v2sig = []byte("\r\n\r\n\x00\r\nQUIT\n")

// Limits: a v1 line is at most 107 bytes with its CRLF; a v2 header's
// addresses and TLVs are bounded here, well above what load balancers
// send.
const (
	maxV1   = 107
	maxV2   = 2048
	v2Fixed = 16
)

// ErrNotProxy is a connection that does not begin with a PROXY header.
var ErrNotProxy = errors.New("proxy protocol: no PROXY header")

// Read reads one header from r, and not a byte more: what follows is the
// connection's own data, read by whoever reads r next.
func Read(r io.Reader) (Header, error) {
	var first [8]byte
	if _, err := io.ReadFull(r, first[:]); err != nil {
		return Header{}, fmt.Errorf("proxy protocol: reading the header: %w", err)
	}
	switch {
	case bytes.Equal(first[:], []byte("PROXY TC")) || bytes.Equal(first[:], []byte("PROXY UN")):
		return readV1(r, first[:])
	case bytes.Equal(first[:], v2sig[:8]):
		return readV2(r, first[:])
	}
	return Header{}, ErrNotProxy
}

func readV1(r io.Reader, start []byte) (Header, error) {
	line := append(make([]byte, 0, maxV1), start...)
	var b [1]byte
	for !bytes.HasSuffix(line, []byte("\r\n")) {
		if len(line) >= maxV1 {
			return Header{}, errors.New("proxy protocol: v1 line longer than 107 bytes")
		}
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return Header{}, fmt.Errorf("proxy protocol: reading the v1 line: %w", err)
		}
		line = append(line, b[0])
	}
	f := strings.Split(string(line[:len(line)-2]), " ")
	if len(f) >= 2 && f[1] == "UNKNOWN" {
		return Header{Local: true}, nil
	}
	if len(f) != 6 || (f[1] != "TCP4" && f[1] != "TCP6") {
		return Header{}, fmt.Errorf("proxy protocol: bad v1 line %q", line)
	}
	src, err1 := v1Addr(f[2], f[4], f[1])
	dst, err2 := v1Addr(f[3], f[5], f[1])
	if err := errors.Join(err1, err2); err != nil {
		return Header{}, fmt.Errorf("proxy protocol: bad v1 line %q: %w", line, err)
	}
	return Header{Source: src, Destination: dst}, nil
}

func v1Addr(ip, port, family string) (netip.AddrPort, error) {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return netip.AddrPort{}, err
	}
	if a.Is4() != (family == "TCP4") || a.Zone() != "" {
		return netip.AddrPort{}, fmt.Errorf("address %s is not %s", ip, family)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || (len(port) > 1 && port[0] == '0') {
		return netip.AddrPort{}, fmt.Errorf("bad port %q", port)
	}
	return netip.AddrPortFrom(a, uint16(p)), nil
}

func readV2(r io.Reader, start []byte) (Header, error) {
	var fixed [v2Fixed]byte
	copy(fixed[:], start)
	if _, err := io.ReadFull(r, fixed[8:]); err != nil {
		return Header{}, fmt.Errorf("proxy protocol: reading the v2 header: %w", err)
	}
	if !bytes.Equal(fixed[:12], v2sig) {
		return Header{}, ErrNotProxy
	}
	verCmd, fam := fixed[12], fixed[13]
	n := int(binary.BigEndian.Uint16(fixed[14:16]))
	if verCmd>>4 != 2 {
		return Header{}, fmt.Errorf("proxy protocol: version %d", verCmd>>4)
	}
	if n > maxV2 {
		return Header{}, fmt.Errorf("proxy protocol: v2 header of %d bytes", n)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return Header{}, fmt.Errorf("proxy protocol: reading the v2 addresses: %w", err)
	}
	switch verCmd & 0xf {
	case 0: // LOCAL
		return Header{Local: true}, nil
	case 1: // PROXY
	default:
		return Header{}, fmt.Errorf("proxy protocol: v2 command %d", verCmd&0xf)
	}
	switch fam {
	case 0x11: // TCP over IPv4
		if n < 12 {
			return Header{}, errors.New("proxy protocol: short v2 IPv4 addresses")
		}
		src := netip.AddrFrom4([4]byte(body[0:4]))
		dst := netip.AddrFrom4([4]byte(body[4:8]))
		return Header{
			Source:      netip.AddrPortFrom(src, binary.BigEndian.Uint16(body[8:10])),
			Destination: netip.AddrPortFrom(dst, binary.BigEndian.Uint16(body[10:12])),
		}, nil
	case 0x21: // TCP over IPv6
		if n < 36 {
			return Header{}, errors.New("proxy protocol: short v2 IPv6 addresses")
		}
		src := netip.AddrFrom16([16]byte(body[0:16]))
		dst := netip.AddrFrom16([16]byte(body[16:32]))
		return Header{
			Source:      netip.AddrPortFrom(src, binary.BigEndian.Uint16(body[32:34])),
			Destination: netip.AddrPortFrom(dst, binary.BigEndian.Uint16(body[34:36])),
		}, nil
	}
	// UNSPEC, UDP or unix addresses: nothing this proxy can use.
	return Header{Local: true}, nil
}

// AppendV1 appends h as a version 1 line.
func (h Header) AppendV1(b []byte) []byte {
	if h.Local || !h.Source.IsValid() || !h.Destination.IsValid() || h.Source.Addr().Is4() != h.Destination.Addr().Is4() {
		return append(b, "PROXY UNKNOWN\r\n"...)
	}
	fam := "TCP6"
	if h.Source.Addr().Is4() {
		fam = "TCP4"
	}
	return fmt.Appendf(b, "PROXY %s %s %s %d %d\r\n", fam, h.Source.Addr(), h.Destination.Addr(), h.Source.Port(), h.Destination.Port())
}

// AppendV2 appends h as a version 2 header.
func (h Header) AppendV2(b []byte) []byte {
	b = append(b, v2sig...)
	if h.Local || !h.Source.IsValid() || !h.Destination.IsValid() || h.Source.Addr().Is4() != h.Destination.Addr().Is4() {
		return append(b, 0x20, 0x00, 0, 0) // LOCAL, UNSPEC
	}
	if h.Source.Addr().Is4() {
		b = append(b, 0x21, 0x11, 0, 12)
		s, d := h.Source.Addr().As4(), h.Destination.Addr().As4()
		b = append(append(b, s[:]...), d[:]...)
	} else {
		b = append(b, 0x21, 0x21, 0, 36)
		s, d := h.Source.Addr().As16(), h.Destination.Addr().As16()
		b = append(append(b, s[:]...), d[:]...)
	}
	b = binary.BigEndian.AppendUint16(b, h.Source.Port())
	return binary.BigEndian.AppendUint16(b, h.Destination.Port())
}

// AddrPortOf is a net.Addr's address and port, unmapped; false for one
// that is not TCP or UDP.
func AddrPortOf(a net.Addr) (netip.AddrPort, bool) {
	switch t := a.(type) {
	case *net.TCPAddr:
		ap := t.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), true
	case *net.UDPAddr:
		ap := t.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), true
	}
	if a == nil {
		return netip.AddrPort{}, false
	}
	ap, err := netip.ParseAddrPort(a.String())
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), err == nil
}
