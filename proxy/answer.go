package proxy

import (
	"errors"
	"net/http"
)

// answerError writes the client's answer when no attempt produced a
// response. 503 with Retry-After when the pool had no
// backend or capacity; 504 when time ran out; 502 when the backend failed.
// A client that left gets nothing it could read; the log says 499.
func (s *Server) answerError(w http.ResponseWriter, r *http.Request, err error) {
	var f *failure
	if !errors.As(err, &f) {
		f = &failure{cause: classify(err, nil, r.Context()), err: err}
	}
	switch {
	case f.noBackend || f.cause == CauseUnsent:
		plain(w, http.StatusServiceUnavailable, "no backend available\n", true)
	case f.cause == CauseClientGone:
		w.WriteHeader(499)
	case f.cause == CauseTimeout:
		plain(w, http.StatusGatewayTimeout, "backend timed out\n", false)
	default:
		plain(w, http.StatusBadGateway, "backend failed\n", false)
	}
}
