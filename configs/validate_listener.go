package configs

import (
	"fmt"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"
)

func (v *validator) listeners() {
	c := v.c
	byName := map[string]int{}
	for i, l := range c.Listeners {
		if l.Name != "" {
			if _, dup := byName[l.Name]; !dup {
				byName[l.Name] = i
			}
		}
	}
	pools := map[string]bool{}
	for _, p := range c.Pools {
		pools[p.Name] = true
	}
	names := map[string]int{}
	for i, l := range c.Listeners {
		p := fmt.Sprintf("listeners[%d]", i)
		switch {
		case l.Name == "":
			v.add(p+".name", "missing; every listener needs a name")
		case !validName(l.Name):
			v.add(p+".name", "%q: use letters, digits, '-', '_' and '.'", l.Name)
		default:
			if first, dup := names[l.Name]; dup {
				v.add(p+".name", "duplicate listener name %q, also listeners[%d]", l.Name, first)
			}
			names[l.Name] = i
		}
		if l.Address == "" {
			v.add(p+".address", "missing; want host:port")
		} else {
			v.address(p+".address", l.Address, true)
		}
		for j := range i {
			// Two listeners on the very same address, even port 0, are one
			// socket to a reload, which keeps a listener's socket by its
			// address.
			if overlaps(c.Listeners[j].Address, l.Address) || strings.EqualFold(c.Listeners[j].Address, l.Address) {
				v.add(p+".address", "%s is also used by listeners[%d]", l.Address, j)
				break
			}
		}
		if overlaps(c.Admin.Address, l.Address) {
			v.add(p+".address", "%s is also the admin address", l.Address)
		}
		if l.TLS != nil {
			v.listenerTLS(p+".tls", l)
		}
		v.redirect(p, l, byName)
		for j, s := range l.TrustedProxies {
			if _, ok := parsePrefix(s); !ok {
				v.add(fmt.Sprintf("%s.trusted_proxies[%d]", p, j), "%q is neither an IP address nor a CIDR", s)
			}
		}
		v.limits(p+".limits", l.Limits)
		if l.ProxyProtocol && len(l.TrustedProxies) == 0 {
			v.add(p+".proxy_protocol", "needs trusted_proxies: the peers allowed to send the header")
		}
		v.routes(p, l, pools)
	}
}

// overlaps reports whether two listen addresses would collide: same port
// and the same host, or either host a wildcard. Port 0 never collides.
func overlaps(a, b string) bool {
	ha, pa, err1 := net.SplitHostPort(a)
	hb, pb, err2 := net.SplitHostPort(b)
	if err1 != nil || err2 != nil || pa != pb || pa == "0" {
		return false
	}
	wild := func(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }
	return strings.EqualFold(ha, hb) || wild(ha) || wild(hb)
}

func (v *validator) listenerTLS(p string, l Listener) {
	t := l.TLS
	if len(t.Certificates) == 0 && t.ACME == nil {
		v.add(p+".certificates", "at least one certificate is needed, or an acme block")
	}
	if t.ACME != nil {
		v.acme(p+".acme", t.ACME, l)
	}
	for i, cert := range t.Certificates {
		cp := fmt.Sprintf("%s.certificates[%d]", p, i)
		if cert.CertFile == "" {
			v.add(cp+".cert_file", "missing")
		}
		if cert.KeyFile == "" {
			v.add(cp+".key_file", "missing")
		}
		v.file(cp+".cert_file", cert.CertFile)
		v.file(cp+".key_file", cert.KeyFile)
	}
	oneOf(v, p+".min_version", t.MinVersion, TLSVersion12, TLSVersion13)
	oneOf(v, p+".client_auth", t.ClientAuth, ClientAuthNone, ClientAuthRequire, ClientAuthVerifyIfGiven)
	switch {
	case (t.ClientAuth == ClientAuthRequire || t.ClientAuth == ClientAuthVerifyIfGiven) && t.ClientCAFile == "":
		v.add(p+".client_auth", "%s needs client_ca_file, the CA that signs client certificates", t.ClientAuth)
	case t.ClientAuth == ClientAuthNone && t.ClientCAFile != "":
		v.add(p+".client_ca_file", "has no effect while client_auth is none")
	}
	v.file(p+".client_ca_file", t.ClientCAFile)
	if !validHeaderName(t.ClientSubjectHeader) {
		v.add(p+".client_subject_header", "%q is not a valid header name", t.ClientSubjectHeader)
	}
}

// internalSuffixes are names no public CA issues for.
var internalSuffixes = []string{".localhost", ".local", ".internal", ".home.arpa"}

func (v *validator) acme(p string, a *ACME, l Listener) {
	if len(a.Names) == 0 {
		v.add(p+".names", "at least one DNS name to obtain a certificate for")
	}
	seen := map[string]int{}
	for i, n := range a.Names {
		np := fmt.Sprintf("%s.names[%d]", p, i)
		key := strings.ToLower(strings.TrimSuffix(n, "."))
		switch {
		case strings.HasPrefix(n, "*"):
			v.add(np, "%q: a wildcard needs the DNS-01 challenge, which Azimuth does not answer; list the names", n)
		case net.ParseIP(n) != nil:
			v.add(np, "%q: an IP address; ACME names here are DNS names", n)
		case !validHostname(n) || !strings.Contains(key, ".") || strings.Contains(n, "_"):
			v.add(np, "%q is not a fully qualified DNS name", n)
		case strings.HasSuffix(n, "."):
			v.add(np, "%q: write the name without its final dot", n)
		case a.Directory == DefaultACMEDirectory && slices.ContainsFunc(internalSuffixes, func(s string) bool { return strings.HasSuffix(key, s) }):
			v.add(np, "%q is an internal name, which Let's Encrypt does not issue for; name a private CA's directory", n)
		default:
			if j, dup := seen[key]; dup {
				v.add(np, "%q is also names[%d]", n, j)
			}
			seen[key] = i
		}
	}
	if u, err := url.Parse(a.Directory); err != nil || u.Scheme != "https" || u.Host == "" {
		v.add(p+".directory", "%q: want the CA's https:// directory URL", a.Directory)
	}
	if a.Email != "" {
		if _, err := mail.ParseAddress(a.Email); err != nil || strings.ContainsAny(a.Email, "<> ") {
			v.add(p+".email", "%q is not an email address", a.Email)
		}
	}
	v.file(p+".directory_ca_file", a.DirectoryCAFile)
	if len(a.Challenges) == 0 {
		v.add(p+".challenges", "at least one of %s, %s", ChallengeHTTP01, ChallengeTLSALPN01)
	}
	plain := ""
	for _, pl := range v.c.Listeners {
		if pl.TLS == nil {
			plain = pl.Address
			break
		}
	}
	for i, c := range a.Challenges {
		cp := fmt.Sprintf("%s.challenges[%d]", p, i)
		oneOf(v, cp, c, ChallengeHTTP01, ChallengeTLSALPN01)
		if c == ChallengeHTTP01 && plain == "" {
			v.add(cp, "http-01 is answered on a plain listener, and the config has none")
		}
	}
	// The ACME library tries both challenges' addresses on one host and
	// leaves the answer to whatever holds them: on two hosts it could
	// bind a socket of its own.
	if slices.Contains(a.Challenges, ChallengeHTTP01) && slices.Contains(a.Challenges, ChallengeTLSALPN01) && plain != "" {
		ph, _, _ := net.SplitHostPort(plain)
		th, _, _ := net.SplitHostPort(l.Address)
		wild := func(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }
		if !strings.EqualFold(ph, th) && !(wild(ph) && wild(th)) {
			v.add(p+".challenges", "the plain listener (%s) and this one (%s) are on different hosts: offer one challenge, or put both on one host", plain, l.Address)
		}
	}
	if a.CheckInterval < time.Second {
		v.add(p+".check_interval", "%s: at least 1s", a.CheckInterval)
	}
	switch {
	case a.ConsulPrefix != "" && a.ConsulPrefix != OverridesNotShared && v.c.Consul == nil:
		v.add(p+".consul_prefix", "needs a consul block: the certificates are shared through its agent")
	case strings.HasPrefix(a.ConsulPrefix, "/"):
		v.add(p+".consul_prefix", "%q: a Consul KV prefix does not start with /", a.ConsulPrefix)
	}
	if (a.ConsulPrefix == "" || a.ConsulPrefix == OverridesNotShared) && a.Storage == "" {
		v.add(p+".storage", "missing, and neither STATE_DIRECTORY nor HOME is set to place it")
	}
	if a.Storage != "" {
		if fi, err := os.Stat(a.Storage); err == nil && !fi.IsDir() {
			v.add(p+".storage", "%s is not a directory", a.Storage)
		}
	}
}

func (v *validator) redirect(p string, l Listener, byName map[string]int) {
	if l.RedirectHTTPS && l.TLS != nil {
		v.add(p+".redirect_https", "a TLS listener cannot redirect to https; it already is")
	}
	if l.RedirectTo == "" {
		return
	}
	if !l.RedirectHTTPS {
		v.add(p+".redirect_to", "needs redirect_https: true")
	}
	j, ok := byName[l.RedirectTo]
	switch {
	case !ok:
		v.add(p+".redirect_to", "no listener is named %q", l.RedirectTo)
	case v.c.Listeners[j].TLS == nil:
		v.add(p+".redirect_to", "listener %q has no tls", l.RedirectTo)
	}
}

func (v *validator) limits(p string, l Limits) {
	if l.MaxHeaderBytes <= 0 {
		v.add(p+".max_header_bytes", "must be more than 0")
	}
	if l.MaxBody < 0 {
		v.add(p+".max_body", "is negative")
	}
	v.nonNegative(p+".max_connections", l.MaxConnections)
	if l.H2MaxConcurrentStreams < 1 {
		v.add(p+".h2_max_concurrent_streams", "must be at least 1")
	}
	if l.H3MaxStreams < 1 {
		v.add(p+".h3_max_streams", "must be at least 1")
	}
	if l.ReadHeaderTimeout == 0 {
		v.add(p+".read_header_timeout", "must be more than 0; a client could hold a connection for ever")
	}
}

func (v *validator) routes(p string, l Listener, pools map[string]bool) {
	if l.RedirectHTTPS {
		if len(l.Routes) > 0 {
			v.add(p+".routes", "not used: this listener redirects every request to https")
		}
		return
	}
	if len(l.Routes) == 0 {
		v.add(p+".routes", "at least one route is needed (or redirect_https: true)")
	}
	type key struct{ host, prefix string }
	seen := map[key]int{}
	names := map[string]int{}
	for i, r := range l.Routes {
		rp := fmt.Sprintf("%s.routes[%d]", p, i)
		// Metrics and rate limits know a route by its name.
		if first, dup := names[r.RouteName()]; dup {
			v.add(rp+".name", "%q is also routes[%d]'s name: a route's metrics and rate limit go by it", r.RouteName(), first)
		} else {
			names[r.RouteName()] = i
		}
		if r.Host != "" {
			if msg := checkHostPattern(r.Host); msg != "" {
				v.add(rp+".host", "%q: %s", r.Host, msg)
			}
		}
		if r.PathPrefix != "" && !strings.HasPrefix(r.PathPrefix, "/") {
			v.add(rp+".path_prefix", "%q must start with /", r.PathPrefix)
		}
		switch {
		case r.Pool == "":
			v.add(rp+".pool", "missing; name the pool that serves this route")
		case !pools[r.Pool]:
			v.add(rp+".pool", "no pool is named %q", r.Pool)
		}
		v.routeRules(rp, r)
		k := key{strings.ToLower(r.Host), r.PathPrefix}
		if first, dup := seen[k]; dup {
			if r.IsDefault() {
				v.add(rp, "a second default route (no host, no path_prefix); routes[%d] is already the default", first)
			} else {
				v.add(rp, "same host and path_prefix as routes[%d]; it would never match", first)
			}
			continue
		}
		seen[k] = i
	}
}

// checkHostPattern returns what is wrong with a route's host, or "".
func checkHostPattern(h string) string {
	if strings.Contains(h, ":") {
		if _, err := netip.ParseAddr(strings.Trim(h, "[]")); err == nil {
			return ""
		}
		return "must not include a port"
	}
	if _, err := netip.ParseAddr(h); err == nil {
		return ""
	}
	name := h
	if rest, ok := strings.CutPrefix(h, "*."); ok {
		name = rest
	}
	if strings.Contains(name, "*") {
		return "want an exact name or *.suffix; '*' may only be the whole first label"
	}
	if !validHostname(name) {
		return "not a valid host name"
	}
	return ""
}
