package configs

import (
	"net/netip"
	"strings"
	"time"
)

// Listener is one socket clients connect to, with its TLS, limits and
// routes.
type Listener struct {
	// Name identifies the listener in metrics, logs and redirect_to.
	Name string `yaml:"name"`
	// Address is host:port to listen on.
	Address string `yaml:"address"`
	// TLS, when set, terminates TLS (h1 and h2 via ALPN, and h3 if
	// enabled). Nil means plain HTTP/1.1 and h2c is not offered.
	TLS *ListenerTLS `yaml:"tls"`
	// RedirectHTTPS answers every request with a permanent redirect to
	// https on the same host; only on a listener without TLS. Routes are
	// then not needed.
	RedirectHTTPS bool `yaml:"redirect_https"`
	// RedirectTo names the TLS listener whose port the redirect points at;
	// empty means the default https port 443.
	RedirectTo string `yaml:"redirect_to"`
	// TrustedProxies lists the peers (IPs or CIDRs) whose X-Forwarded-For
	// and X-Forwarded-Proto are believed; from anyone else they are
	// replaced. Empty means trust nobody.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// ProxyProtocol makes the listener read a PROXY protocol header
	// (version 1 or 2) at the start of every TCP connection from a
	// trusted_proxies peer, within limits.read_header_timeout: the
	// client it names is the request's client (X-Forwarded-For, the
	// access log, rate limits). A trusted peer's connection without one is
	// closed; other peers' connections are read as they are. HTTP/3 (UDP)
	// is not covered. Needs trusted_proxies.
	ProxyProtocol bool `yaml:"proxy_protocol"`
	// Limits bound what one client can hold.
	Limits Limits `yaml:"limits"`
	// Routes are tried most specific first: exact host before wildcard
	// host before no host, then longest path prefix. The one route with
	// neither host nor path_prefix is the listener's default.
	Routes []Route `yaml:"routes"`
}

// TrustedPrefixes returns TrustedProxies as prefixes, a single IP becoming
// a /32 or /128. Entries that do not parse are left out; Load rejects them.
func (l Listener) TrustedPrefixes() []netip.Prefix {
	out := make([]netip.Prefix, 0, len(l.TrustedProxies))
	for _, s := range l.TrustedProxies {
		if p, ok := parsePrefix(s); ok {
			out = append(out, p)
		}
	}
	return out
}

func parsePrefix(s string) (netip.Prefix, bool) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err == nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a, a.BitLen()), true
}

// ListenerTLS is TLS termination on a listener.
type ListenerTLS struct {
	// Certificates are served by SNI; the first is the fallback when no
	// name matches. At least one, unless acme manages the names.
	Certificates []Certificate `yaml:"certificates"`
	// ACME, when set, obtains and renews certificates for its names from
	// an ACME CA (Let's Encrypt by default). A name it manages is served
	// its managed certificate once obtained; every other name, and a
	// managed one until then, is served from certificates.
	ACME *ACME `yaml:"acme"`
	// HTTP3 also serves HTTP/3 over QUIC on the same port (UDP) and
	// advertises it with Alt-Svc.
	HTTP3 bool `yaml:"http3"`
	// MinVersion is "1.2" (default) or "1.3".
	MinVersion string `yaml:"min_version"`
	// ClientCAFile verifies client certificates; needed when ClientAuth is
	// not none.
	ClientCAFile string `yaml:"client_ca_file"`
	// ClientAuth is none (default), require (a valid client certificate is
	// needed) or verify_if_given (checked only if sent).
	ClientAuth string `yaml:"client_auth"`
	// ClientSubjectHeader carries a verified client certificate's subject
	// to the backend; any such header from the client is removed first.
	// Default X-Client-Subject.
	ClientSubjectHeader string `yaml:"client_subject_header"`
}

// ACME is a listener's automatic certificates (RFC 8555).
type ACME struct {
	// Names are the DNS names to obtain certificates for, one certificate
	// each. Every name must reach this listener (TLS-ALPN-01) or a plain
	// listener of this proxy on port 80 (HTTP-01) from the CA.
	Names []string `yaml:"names"`
	// Directory is the CA's ACME directory URL; default Let's Encrypt's
	// production directory.
	Directory string `yaml:"directory"`
	// Email is the contact address of the ACME account (expiry notices);
	// optional.
	Email string `yaml:"email"`
	// DirectoryCAFile is a PEM bundle of CAs that sign the directory's
	// HTTPS certificate, for a private CA; default the system's roots.
	DirectoryCAFile string `yaml:"directory_ca_file"`
	// Challenges are the challenge types offered: http-01 (answered on
	// the proxy's plain listeners) and tls-alpn-01 (answered on this
	// listener). Default both when the config has a plain listener, else
	// tls-alpn-01.
	Challenges []string `yaml:"challenges"`
	// Storage is a directory for the account, keys and certificates when
	// the config has no consul block (or consul_prefix is "off"); with
	// Consul, it keeps a copy of the certificates, served when a proxy
	// starts while the agent cannot be reached. Default
	// $STATE_DIRECTORY/acme when STATE_DIRECTORY is set (systemd's
	// StateDirectory=; the container image sets it), else
	// $HOME/.local/share/azimuth/acme.
	Storage string `yaml:"storage"`
	// ConsulPrefix is the KV prefix under which the proxies sharing a
	// Consul agent keep one account, one certificate per name and their
	// locks, so that only one of them orders or renews a certificate and
	// all serve it. Default azimuth/acme/; "off" keeps them in storage.
	ConsulPrefix string `yaml:"consul_prefix"`
	// CheckInterval is how often the certificates are checked for renewal
	// (they are renewed in the last third of their lifetime, or in the
	// window the CA suggests). Default 10m.
	CheckInterval time.Duration `yaml:"check_interval"`
}

// ACME challenge types.
const (
	ChallengeHTTP01    = "http-01"
	ChallengeTLSALPN01 = "tls-alpn-01"
)

// Certificate is one certificate chain and its key, both PEM files,
// reloaded when they change.
type Certificate struct {
	// CertFile is the PEM chain, leaf first.
	CertFile string `yaml:"cert_file"`
	// KeyFile is the PEM private key.
	KeyFile string `yaml:"key_file"`
}

// Limits bound a listener's connections and requests.
type Limits struct {
	// ReadHeaderTimeout bounds reading a request's headers (default 10s).
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	// ReadTimeout bounds reading a whole request (default 60s); 0 is none.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// WriteTimeout bounds writing a response; default 0 (none) so long
	// streams and downloads are not cut.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// IdleTimeout closes keep-alive connections idle this long (default
	// 120s).
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// MaxHeaderBytes caps a request's header block (default 64KiB).
	MaxHeaderBytes Size `yaml:"max_header_bytes"`
	// MaxBody caps a request body; larger ones get 413. 0 (default) is
	// unlimited.
	MaxBody Size `yaml:"max_body"`
	// MaxConnections caps open client connections; 0 (default) is
	// unlimited.
	MaxConnections int `yaml:"max_connections"`
	// H2MaxConcurrentStreams caps streams per HTTP/2 connection (default
	// 250).
	H2MaxConcurrentStreams int `yaml:"h2_max_concurrent_streams"`
	// H3MaxStreams caps bidirectional streams per QUIC connection (default
	// 100).
	H3MaxStreams int `yaml:"h3_max_streams"`
}

// Route sends matching requests to a pool.
type Route struct {
	// Host matches the request's host (port ignored, case-insensitive):
	// exact ("api.example.com") or one wildcard label ("*.example.com",
	// which matches a.example.com but not example.com). Empty matches any.
	Host string `yaml:"host"`
	// PathPrefix matches the start of the path; it must begin with "/".
	// Empty matches any.
	PathPrefix string `yaml:"path_prefix"`
	// Pool names the pool that serves the route.
	Pool string `yaml:"pool"`
	// Name labels the route in metrics and logs; default HOST+PATH_PREFIX
	// ("*" for any host, "/" for any path), e.g. "api.example.com/v1".
	Name string `yaml:"name"`
	// Rewrite changes the path and Host the backend sees.
	Rewrite Rewrite `yaml:"rewrite"`
	// RequestHeaders change the request's headers on the way to the
	// backend, ResponseHeaders the backend's response on the way back
	// (not the proxy's own answers, such as a 502 or a 429).
	RequestHeaders  HeaderRules `yaml:"request_headers"`
	ResponseHeaders HeaderRules `yaml:"response_headers"`
	// RateLimit, when set, answers 429 to requests past it.
	RateLimit *RateLimit `yaml:"rate_limit"`
}

// IsDefault reports whether the route matches every request.
func (r Route) IsDefault() bool { return r.Host == "" && r.PathPrefix == "" }

// TLS versions and client-auth modes accepted in the file.
const (
	TLSVersion12 = "1.2"
	TLSVersion13 = "1.3"

	ClientAuthNone          = "none"
	ClientAuthRequire       = "require"
	ClientAuthVerifyIfGiven = "verify_if_given"
)
