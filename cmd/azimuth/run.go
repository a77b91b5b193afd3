package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"github.com/azimuthproxy/azimuth/configs"
	"github.com/azimuthproxy/azimuth/internal/sdnotify"
)

// errInterrupted is returned when a second stop signal cuts the drain short.
var errInterrupted = errors.New("second stop signal: exiting without draining")

// run loads the config at path and serves until SIGTERM or SIGINT, then
// drains: /readyz fails at once, the listeners keep serving for
// shutdown.drain_delay so health checks notice, then stop accepting and
// finish requests in flight within shutdown.grace. A second stop signal
// exits at once. SIGHUP and any change of the file reload it; SIGUSR1
// reopens the access log file.
func run(ctx context.Context, path string, stdout, stderr io.Writer) error {
	// Take the signals first: until Notify, SIGHUP's default action ends
	// the process, and a reload sent right after start (systemctl reload,
	// logrotate's SIGUSR1) must not kill it. Signals that arrive during
	// start-up wait in the channel and are handled once serving.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGUSR1)
	defer signal.Stop(sigs)
	// Watch before the first load, so an edit in between is not missed.
	watcher, werr := configs.NewWatcher(path, configs.DefaultDebounce)
	cfg, err := configs.Load(path)
	if err != nil {
		if watcher != nil {
			_ = watcher.Close()
		}
		return err
	}
	logger, err := newLogger(cfg.Log, stderr)
	if err != nil {
		return err
	}
	applyRuntime(cfg.Runtime)
	access, logFile, err := newAccessLog(cfg.Log, stdout, stderr)
	if err != nil {
		return err
	}
	access.FlushEvery(cfg.Log.AccessLog.FlushInterval)
	defer func() { _ = access.Flush() }() // after the drain: every request has ended
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	a, err := newApp(ctx, logger, access)
	if err != nil {
		return err
	}
	if err := a.apply(cfg); err != nil {
		return err
	}
	a.reloads.record(true)
	admin, err := a.startAdmin(cfg)
	if err != nil {
		a.stopAll(context.Background())
		return err
	}

	changed := make(chan struct{}, 1)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	if werr != nil {
		logger.Warn("not watching the config file; reload with SIGHUP", "error", werr)
	} else {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := watcher.Run(ctx, func() {
				select {
				case changed <- struct{}{}:
				default:
				}
			})
			if err != nil && ctx.Err() == nil {
				logger.Error("config watcher stopped; reload with SIGHUP", "error", err)
			}
		}()
	}
	logger.Info("azimuth running", "config", cfg.Source, "zone", cfg.Zone, "admin", admin.addr)
	a.notify(sdnotify.Ready) // every listener and the admin are bound by now

	for {
		select {
		case <-ctx.Done():
			return a.drain(admin, sigs)
		case <-changed:
			a.reload(path, admin)
		case sig := <-sigs:
			switch sig {
			case syscall.SIGHUP:
				a.reload(path, admin)
			case syscall.SIGUSR1:
				if logFile != nil {
					_ = access.Flush() // what waits belongs in the old file
					if err := logFile.reopen(); err != nil {
						logger.Error("reopening access log", "error", err)
					} else {
						logger.Info("access log reopened", "path", logFile.path)
					}
				}
			default:
				logger.Info("stop signal", "signal", sig.String())
				return a.drain(admin, sigs)
			}
		}
	}
}

// reload loads the file and applies it. A file that fails to load or apply
// changes nothing: the running config keeps serving, every problem is
// logged as FILE:LINE: key: problem, and the reload metrics say so until a
// good file arrives.
func (a *app) reload(path string, admin *adminServer) {
	a.notify(sdnotify.Reloading)
	defer a.notify(sdnotify.Ready)
	cfg, err := configs.Load(path)
	if err == nil {
		if cur := a.cfg(); cur != nil && cur.Hash == cfg.Hash && a.lastErr.Load() == nil {
			a.logger.Debug("config unchanged", "source", cfg.Source)
			return
		}
		err = a.apply(cfg)
	}
	if err != nil {
		var errs *configs.Errors
		if errors.As(err, &errs) {
			for _, p := range errs.Problems {
				a.logger.Error("config reload rejected", "file", p.File, "line", p.Line, "key", p.Path, "problem", p.Msg, "at", p.String())
			}
		} else {
			a.logger.Error("config reload rejected", "error", err)
		}
		msg := err.Error()
		a.lastErr.Store(&msg)
		a.reloads.record(false)
		return
	}
	a.lastErr.Store(nil)
	a.reloads.record(true)
	applyRuntime(cfg.Runtime)
	a.logger.Info("config reloaded", "source", cfg.Source, "hash", cfg.Hash)
	if err := admin.update(a, cfg); err != nil {
		a.logger.Error("admin settings not applied", "error", err)
	}
}

// drain is the shutdown sequence for DNS-failover pairs.
func (a *app) drain(admin *adminServer, sigs <-chan os.Signal) error {
	cfg := a.cfg()
	a.draining.Store(true)
	a.notify(sdnotify.Stopping)
	a.logger.Info("draining: readiness fails now", "drain_delay", cfg.Shutdown.DrainDelay.String(), "grace", cfg.Shutdown.Grace.String())
	if interrupted(sigs, time.After(cfg.Shutdown.DrainDelay)) {
		return errInterrupted
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Shutdown.Grace)
	defer cancel()
	done := make(chan struct{})
	go func() {
		a.stopAll(ctx)
		close(done)
	}()
	if interrupted(sigs, done) {
		return errInterrupted
	}
	_ = admin.srv.Shutdown(ctx)
	a.logger.Info("stopped")
	return nil
}

// notify tells the service manager (systemd Type=notify) about a state
// change; without $NOTIFY_SOCKET it does nothing. A failure is logged and
// never stops the proxy.
func (a *app) notify(send func() error) {
	if err := send(); err != nil {
		a.logger.Warn("notifying the service manager", "error", err)
	}
}

// interrupted waits for done and reports whether a stop signal came first.
func interrupted[T any](sigs <-chan os.Signal, done <-chan T) bool {
	for {
		select {
		case <-done:
			return false
		case sig := <-sigs:
			if sig == syscall.SIGTERM || sig == syscall.SIGINT {
				return true
			}
		}
	}
}

// stopAll closes every listener gracefully within ctx and stops the pools.
func (a *app) stopAll(ctx context.Context) {
	a.mu.Lock()
	slots, pools := a.slots, a.pools
	a.slots, a.pools = nil, nil
	a.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range slots {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.shutdown(ctx, nil); err != nil {
				a.logger.Warn("listener closed before its requests finished", "listener", s.name, "error", err)
			}
		}()
	}
	wg.Wait()
	a.bg.Wait()
	for _, rt := range pools {
		rt.stop()
	}
}

// adminServer is the admin listener; its handler is rebuilt on reload so a
// new token or pprof switch applies at once. A new address needs a restart.
type adminServer struct {
	addr       string // bound
	configured string // as the config it started from gave it
	srv        *http.Server
	handler    swapHandler
}

func (a *app) startAdmin(cfg *configs.Config) (*adminServer, error) {
	ln, err := listenTCP(cfg.Admin.Address, a.logger)
	if err != nil {
		return nil, fmt.Errorf("listening on admin address %s: %w", cfg.Admin.Address, err)
	}
	s := &adminServer{addr: ln.Addr().String(), configured: cfg.Admin.Address}
	if err := s.update(a, cfg); err != nil {
		_ = ln.Close()
		return nil, err
	}
	s.srv = &http.Server{
		Handler:           &s.handler,
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          slog.NewLogLogger(a.logger.Handler(), slog.LevelWarn),
	}
	go func() { _ = s.srv.Serve(ln) }()
	a.logger.Info("admin listening", "address", s.addr)
	return s, nil
}

func (s *adminServer) update(a *app, cfg *configs.Config) error {
	token, err := readTokenFile(cfg.Admin.TokenFile)
	if err != nil {
		return fmt.Errorf("reading admin token: %w", err)
	}
	// Compared with the address it was started from, not the bound one:
	// "127.0.0.1:0" kept in the file is no change.
	if s.srv != nil && cfg.Admin.Address != s.configured {
		a.logger.Warn("admin.address changes on restart", "running", s.addr, "configured", cfg.Admin.Address)
	}
	s.handler.set(a.adminHandler(token, cfg.Admin.Pprof))
	return nil
}

// newLogger builds the process logger from the config's log section.
func newLogger(c configs.Log, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.Level)); err != nil {
		return nil, fmt.Errorf("log level %q: %w", c.Level, err)
	}
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return slog.New(slog.NewJSONHandler(w, opts)), nil
}

// startMemoryLimit is the Go runtime's memory limit at start: GOMEMLIMIT,
// or none. A config without runtime.memory_limit goes back to it.
var startMemoryLimit = debug.SetMemoryLimit(-1)

// startGCPercent is the collector's pace at start: GOGC, or 100. A config
// without runtime.gc_percent goes back to it.
var startGCPercent = func() int {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}()

// applyRuntime sets the runtime settings of the config. A pace of off is
// only safe under a limit, so the collector is never off without one,
// even between the two calls: the limit is set first when the pace goes
// off, and last otherwise (it may be going away).
func applyRuntime(r configs.Runtime) {
	limit := startMemoryLimit
	if r.MemoryLimit > 0 {
		limit = r.MemoryLimit.Bytes()
	}
	pace := startGCPercent
	if r.GCPercent != 0 {
		pace = int(r.GCPercent) // GCOff is -1, as SetGCPercent takes it
	}
	if pace < 0 {
		debug.SetMemoryLimit(limit)
		debug.SetGCPercent(pace)
		return
	}
	debug.SetGCPercent(pace)
	debug.SetMemoryLimit(limit)
}
