package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
)

// ErrUnexpectedStatus is wrapped by a check whose response status is
// outside the expected range.
var ErrUnexpectedStatus = errors.New("unexpected status")

// newClient builds the HTTP client of one set of options. Its transport is
// separate from the proxy's and opens a fresh connection for every check:
// a probe then also proves the backend accepts connections, and a
// connection cut by a timeout or left half-read is never reused by the
// next check.
func newClient(o ActiveOptions) *http.Client {
	d := &net.Dialer{Timeout: o.Timeout}
	tr := &http.Transport{
		Proxy:                  nil, // checks go straight to the backend
		DialContext:            withHeader(dialer(d), o.ProxyHeader),
		TLSClientConfig:        o.TLSConfig.Clone(),
		TLSHandshakeTimeout:    o.Timeout,
		ResponseHeaderTimeout:  o.Timeout,
		DisableKeepAlives:      true,
		DisableCompression:     true,
		MaxResponseHeaderBytes: 64 << 10,
	}
	p := new(http.Protocols)
	switch o.Scheme {
	case SchemeHTTP:
		p.SetHTTP1(true)
	case SchemeHTTPS:
		p.SetHTTP1(true)
		p.SetHTTP2(true)
	case SchemeH2C:
		p.SetUnencryptedHTTP2(true)
	case SchemeH2:
		p.SetHTTP2(true)
	}
	tr.Protocols = p
	return &http.Client{
		Transport: tr,
		// A redirect is an answer: its status is judged, not followed.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// urlScheme is the URL scheme of a check scheme.
func urlScheme(s string) string {
	if s == SchemeHTTPS || s == SchemeH2 {
		return "https"
	}
	return "http"
}

// maxBodyRead bounds how much of a check's response body is read.
const maxBodyRead = 4 << 10

// probe sends one check to addr and returns nil if it passed. The whole
// exchange, body included, is bounded by o.Timeout.
func probe(ctx context.Context, hc *http.Client, o *ActiveOptions, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	host := addr
	if path, ok := strings.CutPrefix(addr, unixPrefix); ok {
		// The socket's path is no host: the URL names localhost and the
		// dial goes to the socket the context carries.
		host = "localhost"
		ctx = context.WithValue(ctx, unixSocketKey{}, path)
	}
	url := urlScheme(o.Scheme) + "://" + host + o.Path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("checking health of %s: %w", addr, err)
	}
	if o.Host != "" {
		req.Host = o.Host
	}
	req.Header.Set("User-Agent", "azimuth-health-check")
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("checking health of %s: %w", addr, err)
	}
	_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, maxBodyRead))
	resp.Body.Close()
	if resp.StatusCode < o.ExpectMin || resp.StatusCode > o.ExpectMax {
		return fmt.Errorf("checking health of %s: %w %d, want %d-%d",
			addr, ErrUnexpectedStatus, resp.StatusCode, o.ExpectMin, o.ExpectMax)
	}
	if err != nil {
		return fmt.Errorf("checking health of %s: reading body: %w", addr, err)
	}
	return nil
}

// unixPrefix starts the address of a backend on a Unix domain socket,
// "unix:/run/app.sock", as internal/h1client.UnixPrefix does for the
// proxy's own connections.
const unixPrefix = "unix:"

// unixSocketKey is the context key of the socket path a check of a Unix
// socket backend dials.
type unixSocketKey struct{}

// dialer is d's DialContext, but a check whose context carries a Unix
// socket's path (see probe) dials that socket.
// withHeader makes dial write header first on each connection it makes;
// nil leaves dial as it is.
func withHeader(dial func(context.Context, string, string) (net.Conn, error), header []byte) func(context.Context, string, string) (net.Conn, error) {
	if len(header) == 0 {
		return dial
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		if _, err := c.Write(header); err != nil {
			_ = c.Close()
			return nil, fmt.Errorf("writing the PROXY header: %w", err)
		}
		return c, nil
	}
}

func dialer(d *net.Dialer) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if path, ok := ctx.Value(unixSocketKey{}).(string); ok {
			return d.DialContext(ctx, "unix", path)
		}
		return d.DialContext(ctx, network, addr)
	}
}
