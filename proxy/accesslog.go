package proxy

import (
	"context"
	"crypto/tls"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"time"
)

// AccessLog writes one structured line per request, with every attempt it
// took. Successful requests (status below 400) may be sampled; failures are
// always logged.
type AccessLog struct {
	logger *slog.Logger
	sample float64
}

// NewAccessLog logs through logger, keeping the given fraction (0 to 1) of
// successful requests.
func NewAccessLog(logger *slog.Logger, sampleSuccess float64) *AccessLog {
	return &AccessLog{logger: logger, sample: sampleSuccess}
}

// attemptLog is one attempt as it appears in the access log.
type attemptLog struct {
	Backend  string  `json:"backend"`
	Zone     string  `json:"zone"`
	Result   string  `json:"result"`
	Status   int     `json:"status,omitempty"`
	Duration float64 `json:"duration_ms"`
}

func (a *AccessLog) log(x *exchange, r *http.Request, status int, aborted bool) {
	if status < 400 && !aborted && a.sample < 1 && rand.Float64() >= a.sample {
		return
	}
	attempts := make([]attemptLog, min(x.tries, maxLoggedAttempts))
	for i := range attempts {
		at := x.attempts[i]
		attempts[i] = attemptLog{Backend: at.backend, Zone: at.zone, Result: at.cause.String(), Status: at.status,
			Duration: float64(at.duration.Microseconds()) / 1000}
	}
	attrs := []slog.Attr{
		slog.String("request_id", x.id),
		slog.String("client", r.RemoteAddr),
		slog.String("listener", x.listener.Name),
		slog.String("proto", protoName(r)),
		slog.String("tls", tlsVersion(r.TLS)),
		slog.String("method", r.Method),
		slog.String("host", r.Host),
		slog.String("path", r.URL.Path),
		slog.Int("status", status),
		slog.Int64("bytes", x.rec.bytes),
		slog.Float64("duration_ms", float64(time.Since(x.start).Microseconds())/1000),
		slog.String("pool", x.pool.Name),
		slog.Int("tries", x.tries),
		slog.Any("attempts", attempts),
	}
	if aborted {
		attrs = append(attrs, slog.Bool("aborted", true))
	}
	a.logger.LogAttrs(context.Background(), slog.LevelInfo, "request", attrs...)
}

func protoName(r *http.Request) string {
	switch r.ProtoMajor {
	case 3:
		return "h3"
	case 2:
		return "h2"
	}
	return "h1"
}

func tlsVersion(cs *tls.ConnectionState) string {
	if cs == nil {
		return ""
	}
	return tls.VersionName(cs.Version)
}
