package edgetls

import (
	"net"
	"net/http"
	"strconv"
	"strings"
)

// RedirectHTTPS returns the handler of a redirect_https listener: every
// request gets 308 Permanent Redirect (unlike 301, the client keeps the
// method and body) to the same host, path and query over https on port.
// Port 443 is left out of the URL. A request without a usable Host gets 400.
func RedirectHTTPS(port int) http.Handler {
	suffix := ""
	if port != 443 {
		suffix = ":" + strconv.Itoa(port)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
		if host == "" || strings.ContainsAny(host, "/\\@?# \t\r\n") {
			http.Error(w, "missing or invalid Host header", http.StatusBadRequest)
			return
		}
		if strings.Contains(host, ":") { // IPv6 literal
			host = "[" + host + "]"
		}
		target := "https://" + host + suffix + r.URL.RequestURI()
		w.Header().Set("Location", target)
		w.Header().Set("Connection", "close")
		w.WriteHeader(http.StatusPermanentRedirect)
	})
}
