package proxy

import (
	"net"
	"net/http"
	"net/netip"

	"github.com/azimuthproxy/azimuth/internal/proxyproto"
)

// proxyHeader returns what makes a request's PROXY protocol header of the
// version (1 or 2), or nil for 0. The header names the client as the
// proxy saw it (after a PROXY header of its own, if the listener reads
// one) and the address the client connected to; when that address is
// unknown (HTTP/3), the unspecified address of the client's family.
func proxyHeader(version int) func(*http.Request) []byte {
	if version != 1 && version != 2 {
		return nil
	}
	return func(r *http.Request) []byte {
		h := proxyproto.Header{Local: true}
		if src, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
			h = proxyproto.Header{Source: netip.AddrPortFrom(src.Addr().Unmap(), src.Port())}
			if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
				h.Destination, _ = proxyproto.AddrPortOf(la)
			}
			if !h.Destination.IsValid() || h.Destination.Addr().Is4() != h.Source.Addr().Is4() {
				unspecified := netip.IPv6Unspecified()
				if h.Source.Addr().Is4() {
					unspecified = netip.IPv4Unspecified()
				}
				h.Destination = netip.AddrPortFrom(unspecified, 0)
			}
		}
		if version == 1 {
			return h.AppendV1(nil)
		}
		return h.AppendV2(nil)
	}
}
