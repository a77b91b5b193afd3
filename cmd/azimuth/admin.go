package main

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"
	"time"

	"github.com/azimuthproxy/azimuth/health"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// adminHandler serves the admin API. /healthz and /readyz are open, since
// load balancers and DNS health checks poll them without credentials and
// they reveal nothing; with admin.token_file set, everything else needs
// "Authorization: Bearer TOKEN", compared in constant time. State changes
// are POST only.
func (a *app) adminHandler(token string, pprofOn bool) http.Handler {
	open := http.NewServeMux()
	open.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok\n")
	})
	open.HandleFunc("GET /readyz", a.serveReady)

	private := http.NewServeMux()
	private.Handle("GET /metrics", promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{Registry: a.reg}))
	private.HandleFunc("GET /status", a.serveStatus)
	private.HandleFunc("GET /{$}", a.serveStatusPage)
	private.Handle("/pools/", health.AdminHandler(a.registry, a.logger))
	if pprofOn {
		private.HandleFunc("/debug/pprof/", pprof.Index)
		private.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		private.HandleFunc("/debug/pprof/profile", pprof.Profile)
		private.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		private.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	guarded := requireToken(token, private)
	open.Handle("/", guarded)
	return open
}

func requireToken(token string, next http.Handler) http.Handler {
	if token == "" {
		return next
	}
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		if subtle.ConstantTimeCompare(got, want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="azimuth admin"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// readTokenFile reads the admin token: the file's first line, trimmed.
func readTokenFile(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimSpace(line), nil
}

// readiness is /readyz's answer.
type readiness struct {
	Ready   bool     `json:"ready"`
	Reasons []string `json:"reasons,omitempty"`
}

// ready decides readiness, the signal a DNS-failover health check polls:
// ready when a config is running, the process is not draining, and every
// pool has a backend that can take a request now: up (or pending its first
// checks) and not drained. Panic mode does not count: it spreads load over
// a partly failed pool, but a pool with no healthy backend at all has
// nothing to serve with, and the other region of the pair should take the
// traffic. A pool fed by Consul that has not synced yet counts as not
// ready, with that reason.
func (a *app) ready() readiness {
	var r readiness
	if a.draining.Load() {
		r.Reasons = append(r.Reasons, "draining: shutting down")
	}
	if a.cfg() == nil {
		r.Reasons = append(r.Reasons, "no config loaded")
	}
	a.mu.Lock()
	for _, rt := range a.pools {
		if rt.watcher != nil && !rt.watcher.State().Synced && len(rt.pool.Backends()) == 0 {
			r.Reasons = append(r.Reasons, "pool "+rt.name+": waiting for consul ("+rt.watcher.State().LastError+")")
			continue
		}
		if st := rt.pool.Status(); st.Healthy == 0 {
			r.Reasons = append(r.Reasons, fmt.Sprintf("pool %s: no available backend (0 of %d)", rt.name, st.Total))
		}
	}
	a.mu.Unlock()
	r.Ready = len(r.Reasons) == 0
	return r
}

func (a *app) serveReady(w http.ResponseWriter, _ *http.Request) {
	r := a.ready()
	code := http.StatusOK
	if !r.Ready {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, r)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

var startTime = time.Now()
