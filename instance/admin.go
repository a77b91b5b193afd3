package instance

import (
	"context"
	"crypto/subtle"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"
	"time"

	"github.com/azimuthproxy/azimuth/configs"
	"github.com/azimuthproxy/azimuth/health"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// adminHandler serves the admin API. /healthz and /readyz are open, since
// load balancers and DNS health checks poll them without credentials and
// they reveal nothing; with admin tokens set (token_file, tokens),
// everything else needs "Authorization: Bearer TOKEN", one of them,
// compared in constant time. State changes are POST only, and each is
// logged with the name of the token that made it.
func (i *Instance) adminHandler(tokens []namedToken, pprofOn bool) http.Handler {
	open := http.NewServeMux()
	open.HandleFunc("GET /healthz", serveHealthz)
	open.HandleFunc("GET /readyz", i.serveReady)

	private := http.NewServeMux()
	private.Handle("GET /metrics", promhttp.HandlerFor(i.reg, promhttp.HandlerOpts{Registry: i.reg}))
	private.HandleFunc("GET /status", i.serveStatus)
	private.HandleFunc("GET /{$}", i.serveStatusPage)
	private.Handle("/pools/", health.AdminHandler(i.registry, i.logger, i.overrides))
	private.HandleFunc("POST /evacuate", i.serveEvacuate(true))
	private.HandleFunc("POST /restore", i.serveEvacuate(false))
	if pprofOn {
		private.HandleFunc("/debug/pprof/", pprof.Index)
		private.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		private.HandleFunc("/debug/pprof/profile", pprof.Profile)
		private.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		private.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	open.Handle("/", requireToken(tokens, i.audit(private)))
	return open
}

// namedToken is an admin token and the name it is logged under.
type namedToken struct{ name, token string }

// tokenName is the request context's key for the name of the admin token
// a request came with.
type tokenName struct{}

// audit logs every admin call that is not a GET or HEAD (the ones that
// change state): method, path, the token's name ("none" without tokens),
// the client and the answer's status.
func (i *Instance) audit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			next.ServeHTTP(w, r)
			return
		}
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r)
		by, _ := r.Context().Value(tokenName{}).(string)
		if by == "" {
			by = "none"
		}
		i.logger.Info("admin call", "method", r.Method, "path", r.URL.Path, "token", by, "remote", r.RemoteAddr, "status", sw.status)
	})
}

// statusWriter remembers the status an admin handler answered with.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// readyHandler is readiness.address's listener: /healthz and /readyz
// only, for health checkers that must not reach the admin API.
func (i *Instance) readyHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", serveHealthz)
	mux.HandleFunc("GET /readyz", i.serveReady)
	return mux
}

func serveHealthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, "ok\n")
}

// requireToken lets through a request that carries one of tokens, every
// one compared in constant time, with the token's name in its context.
// Without tokens every request goes through.
func requireToken(tokens []namedToken, next http.Handler) http.Handler {
	if len(tokens) == 0 {
		return next
	}
	wants := make([][]byte, len(tokens))
	for j, t := range tokens {
		wants[j] = []byte("Bearer " + t.token)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		match := -1
		for j, want := range wants {
			if subtle.ConstantTimeCompare(got, want) == 1 {
				match = j
			}
		}
		if match < 0 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="azimuth admin"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), tokenName{}, tokens[match].name)))
	})
}

// readTokens reads the admin tokens: token_file's as "default", then the
// named ones. An empty token is an error: it would let anyone in.
func readTokens(a configs.Admin) ([]namedToken, error) {
	files := []configs.AdminToken{}
	if a.TokenFile != "" {
		files = append(files, configs.AdminToken{Name: "default", File: a.TokenFile})
	}
	files = append(files, a.Tokens...)
	var out []namedToken
	for _, f := range files {
		token, err := readTokenFile(f.File)
		if err != nil {
			return nil, err
		}
		if token == "" {
			return nil, fmt.Errorf("admin token %q: %s is empty", f.Name, f.File)
		}
		out = append(out, namedToken{name: f.Name, token: token})
	}
	return out, nil
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

// adminServer is the admin listener. It is bound by the first plan and
// lives until Drain; its handler is rebuilt by every commit, so a new
// token or pprof switch applies at once. A new address needs a restart.
type adminServer struct {
	addr       string // bound
	configured string // as the config it started from gave it
	// readyConfigured is readiness.address as the first config gave it.
	readyConfigured string
	srv             *http.Server
	handler         swapHandler
}

// adminPlan is a plan's admin settings: the token read, and the listener
// bound when no admin runs yet. err is a token that could not be read on
// a reload: the admin keeps its running settings, its old token still
// guarding it, and the rest of the config applies, so a token file does
// not hold back the proxy's routes and pools.
type adminPlan struct {
	ln     net.Listener
	ready  net.Listener // readiness.address, bound by the first plan
	tokens []namedToken
	pprof  bool
	err    error
}

// planAdmin prepares cfg's admin settings. The first plan fails when the
// address cannot be bound or the token read; later ones never fail here.
func (i *Instance) planAdmin(cfg *configs.Config) (adminPlan, error) {
	var ap adminPlan
	if i.admin == nil {
		ln, err := listenTCP(cfg.Admin.Address, i.logger)
		if err != nil {
			return adminPlan{}, fmt.Errorf("listening on admin address %s: %w", cfg.Admin.Address, err)
		}
		ap.ln = ln
		if a := cfg.Readiness.Address; a != "" {
			if ap.ready, err = listenTCP(a, i.logger); err != nil {
				_ = ln.Close()
				return adminPlan{}, fmt.Errorf("listening on readiness address %s: %w", a, err)
			}
		}
	}
	tokens, err := readTokens(cfg.Admin)
	if err != nil {
		err = fmt.Errorf("reading admin token: %w", err)
		if ap.ln != nil {
			ap.close()
			return adminPlan{}, err
		}
		return adminPlan{err: err}, nil
	}
	ap.tokens, ap.pprof = tokens, cfg.Admin.Pprof
	return ap, nil
}

// commitAdmin starts the admin listener the first plan bound, or gives
// the running one its new settings. The caller holds i.mu.
func (i *Instance) commitAdmin(ap adminPlan, cfg *configs.Config) {
	if ap.ln != nil {
		s := &adminServer{addr: ap.ln.Addr().String(), configured: cfg.Admin.Address, readyConfigured: cfg.Readiness.Address}
		s.handler.set(i.adminHandler(ap.tokens, ap.pprof))
		s.srv = &http.Server{
			Handler:           &s.handler,
			ReadHeaderTimeout: 5 * time.Second,
			ErrorLog:          slog.NewLogLogger(i.logger.Handler(), slog.LevelWarn),
		}
		go func() { _ = s.srv.Serve(ap.ln) }()
		i.admin = s
		i.logger.Info("admin listening", "address", s.addr)
		if ap.ready != nil {
			i.readyz = &http.Server{
				Handler:           i.readyHandler(),
				ReadHeaderTimeout: 5 * time.Second,
				ErrorLog:          slog.NewLogLogger(i.logger.Handler(), slog.LevelWarn),
			}
			go func() { _ = i.readyz.Serve(ap.ready) }()
			i.readyAddr = ap.ready.Addr().String()
			i.logger.Info("readiness listening", "address", i.readyAddr)
		}
		return
	}
	if ap.err != nil {
		i.logger.Error("admin settings not applied", "error", ap.err)
		return
	}
	// Compared with the address it was started from, not the bound one:
	// "127.0.0.1:0" kept in the file is no change.
	if cfg.Admin.Address != i.admin.configured {
		i.logger.Warn("admin.address changes on restart", "running", i.admin.addr, "configured", cfg.Admin.Address)
	}
	if cfg.Readiness.Address != i.admin.readyConfigured {
		i.logger.Warn("readiness.address changes on restart", "running", i.admin.readyConfigured, "configured", cfg.Readiness.Address)
	}
	i.admin.handler.set(i.adminHandler(ap.tokens, ap.pprof))
}

// close releases the listeners a plan bound.
func (ap adminPlan) close() {
	if ap.ln != nil {
		_ = ap.ln.Close()
	}
	if ap.ready != nil {
		_ = ap.ready.Close()
	}
}
