package loadtest

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/quic-go/quic-go/http3"
)

// roundTripper is what the generator needs from a client: one exchange,
// and a way to release its connections when the run ends.
type roundTripper interface {
	http.RoundTripper
	CloseIdleConnections()
}

// newTransport builds the client transport for o.Protocol. Connection pools
// are sized to the worker count so keep-alive connections are reused rather
// than churned.
func newTransport(o Options) (roundTripper, func() error, error) {
	tlsConf := &tls.Config{InsecureSkipVerify: o.Insecure} //nolint:gosec // an explicit operator choice for self-signed targets
	switch o.Protocol {
	case H3:
		tlsConf.NextProtos = []string{http3.NextProtoH3}
		t := &http3.Transport{TLSClientConfig: tlsConf, DisableCompression: true}
		return t, t.Close, nil
	case H1, H2:
		d := &net.Dialer{Timeout: o.Timeout, KeepAlive: 30 * time.Second}
		t := &http.Transport{
			DialContext:         d.DialContext,
			TLSClientConfig:     tlsConf,
			TLSHandshakeTimeout: o.Timeout,
			MaxIdleConns:        o.Concurrency,
			MaxIdleConnsPerHost: o.Concurrency,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
			Protocols:           new(http.Protocols),
		}
		if o.Protocol == H1 {
			t.Protocols.SetHTTP1(true)
		} else {
			// One connection per client, even when its first requests
			// start together, before it is up.
			t.MaxConnsPerHost = 1
			// HTTP/2 only: over TLS through ALPN, over plain TCP with
			// prior knowledge (h2c).
			t.Protocols.SetHTTP2(true)
			t.Protocols.SetUnencryptedHTTP2(true)
		}
		return t, func() error { t.CloseIdleConnections(); return nil }, nil
	}
	return nil, nil, fmt.Errorf("protocol %q: want h1, h2 or h3", o.Protocol)
}
