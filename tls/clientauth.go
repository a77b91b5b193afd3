package edgetls

import "net/http"

// ClientSubject returns the subject (RFC 2253 form, e.g.
// "CN=alice,O=Example") of the client certificate that the listener
// verified, and false when the request carries none. Only verified chains
// count: with client_auth "none" a client's certificate is not verified and
// never reported. The proxy forwards the value in a header of its choosing
// and must drop any copy of that header sent by the client.
func ClientSubject(r *http.Request) (string, bool) {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return "", false
	}
	return r.TLS.VerifiedChains[0][0].Subject.String(), true
}
