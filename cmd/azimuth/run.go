package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"sync"
	"syscall"

	"github.com/azimuthproxy/azimuth/configs"
	"github.com/azimuthproxy/azimuth/instance"
	"github.com/azimuthproxy/azimuth/internal/cgroup"
	"github.com/azimuthproxy/azimuth/internal/sdnotify"
)

// errInterrupted is returned when a second stop signal cuts the drain short.
var errInterrupted = errors.New("second stop signal: exiting without draining")

// run loads the config at path and serves until SIGTERM or SIGINT, then
// drains: /readyz fails at once, the listeners keep serving for
// shutdown.drain_delay so health checks notice, then stop accepting and
// finish requests in flight within shutdown.grace. A second stop signal
// exits at once. SIGHUP and any change of the file reload it; SIGUSR1
// reopens the access log file. The access log's waiting lines are written
// on SIGUSR1, SIGHUP, at the start of the drain and at exit.
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
	applyRuntime(cfg.Runtime, logger)
	access, logFile, err := newAccessLog(cfg.Log, stdout, stderr)
	if err != nil {
		return err
	}
	defer func() { _ = access.Flush() }() // after the drain: every request has ended
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	inst, err := instance.New(ctx, instance.Options{Logger: logger, AccessLog: access})
	if err != nil {
		return err
	}
	if err := inst.Apply(cfg); err != nil {
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
	logger.Info("azimuth running", "config", cfg.Source, "zone", cfg.Zone, "admin", inst.AdminAddr())
	notify(logger, sdnotify.Ready) // every listener and the admin are bound by now

	for {
		select {
		case <-ctx.Done():
			_ = access.Flush()
			return drain(inst, logger, sigs)
		case <-changed:
			reload(inst, path, logger)
		case sig := <-sigs:
			switch sig {
			case syscall.SIGHUP:
				_ = access.Flush() // an operator's signal: what waits goes out now
				reload(inst, path, logger)
			case syscall.SIGUSR1:
				_ = access.Flush() // what waits belongs in the old file
				if logFile != nil {
					if err := logFile.reopen(); err != nil {
						logger.Error("reopening access log", "error", err)
					} else {
						logger.Info("access log reopened", "path", logFile.path)
					}
				}
			default:
				logger.Info("stop signal", "signal", sig.String())
				_ = access.Flush()
				return drain(inst, logger, sigs)
			}
		}
	}
}

// reload re-reads the config file (see instance.Reload), telling the
// service manager, and sets the runtime settings of a config it applied.
func reload(inst *instance.Instance, path string, logger *slog.Logger) {
	notify(logger, sdnotify.Reloading)
	defer notify(logger, sdnotify.Ready)
	if cfg, _ := inst.Reload(path); cfg != nil {
		applyRuntime(cfg.Runtime, logger)
	}
}

// drain is the shutdown sequence (see instance.Drain); a second stop
// signal cuts it short and the process exits at once.
func drain(inst *instance.Instance, logger *slog.Logger, sigs <-chan os.Signal) error {
	notify(logger, sdnotify.Stopping)
	done := make(chan struct{})
	go func() {
		inst.Drain(context.Background())
		close(done)
	}()
	if interrupted(sigs, done) {
		return errInterrupted
	}
	logger.Info("stopped")
	return nil
}

// notify tells the service manager (systemd Type=notify) about a state
// change; without $NOTIFY_SOCKET it does nothing. A failure is logged and
// never stops the proxy.
func notify(logger *slog.Logger, send func() error) {
	if err := send(); err != nil {
		logger.Warn("notifying the service manager", "error", err)
	}
}

// interrupted waits for done and reports whether a stop signal came first.
func interrupted(sigs <-chan os.Signal, done <-chan struct{}) bool {
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
// or none (math.MaxInt64).
var startMemoryLimit = debug.SetMemoryLimit(-1)

// startGCPercent is the collector's pace at start: GOGC, or 100.
var startGCPercent = func() int {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}()

// Under a memory limit the config does not set, the runtime may fill
// cgroupShare of the cgroup's limit: the rest is for what the runtime does
// not count and the kernel charges to the cgroup (the binary's pages,
// socket buffers), so the collector acts before the OOM killer would.
// A limit bounds the heap, so the collector can then run at limitedPace:
// at 100 it runs many times a second under load over a live heap of a
// few MiB (decision 0012).
const (
	cgroupShare = 0.8
	limitedPace = 400
)

// runtimeSettings are the memory limit and the collector's pace a process
// runs with, and where each came from.
type runtimeSettings struct {
	limit       int64 // math.MaxInt64: none
	pace        int   // -1: off
	limitSource string
	paceSource  string
}

// settleRuntime decides the runtime settings, most explicit first: the
// config's runtime keys, then GOMEMLIMIT and GOGC, then a limit derived
// from the cgroup's (cg, if set) and a pace for a limited heap.
func settleRuntime(r configs.Runtime, envLimit int64, limitSet bool, envPace int, gogcSet bool, cg cgroup.Limit, cgSet bool) runtimeSettings {
	s := runtimeSettings{limit: envLimit, pace: envPace, limitSource: "GOMEMLIMIT", paceSource: "GOGC"}
	switch {
	case r.MemoryLimit > 0:
		s.limit, s.limitSource = r.MemoryLimit.Bytes(), "runtime.memory_limit"
	case limitSet: // GOMEMLIMIT=off included: no limit, on purpose
	case cgSet:
		s.limit, s.limitSource = int64(float64(cg.Bytes)*cgroupShare), fmt.Sprintf("%.0f%% of %s", cgroupShare*100, cg.File)
	default:
		s.limitSource = "none"
	}
	switch {
	case r.GCPercent != 0:
		s.pace, s.paceSource = int(r.GCPercent), "runtime.gc_percent" // GCOff is -1, as SetGCPercent takes it
	case gogcSet:
	case s.limit != math.MaxInt64:
		s.pace, s.paceSource = limitedPace, "under a memory limit"
	default:
		s.paceSource = "Go's default"
	}
	return s
}

// applyRuntime sets the runtime settings of the config (see
// settleRuntime) and returns them. A pace of off is only safe under a
// limit, so the collector is never off without one, even between the two
// calls: the limit is set first when the pace goes off, and last otherwise
// (it may be going away).
func applyRuntime(r configs.Runtime, logger *slog.Logger) runtimeSettings {
	cg, cgSet, err := cgroup.MemoryLimit()
	if err != nil {
		logger.Warn("reading the cgroup's memory limit", "error", err)
	}
	_, limitSet := os.LookupEnv("GOMEMLIMIT")
	_, gogcSet := os.LookupEnv("GOGC")
	s := settleRuntime(r, startMemoryLimit, limitSet, startGCPercent, gogcSet, cg, cgSet)
	if s.pace < 0 {
		debug.SetMemoryLimit(s.limit)
		debug.SetGCPercent(s.pace)
	} else {
		debug.SetGCPercent(s.pace)
		debug.SetMemoryLimit(s.limit)
	}
	limit := "none"
	if s.limit != math.MaxInt64 {
		limit = strconv.FormatInt(s.limit>>20, 10) + "MiB"
	}
	logger.Info("runtime settings", "memory_limit", limit, "memory_limit_from", s.limitSource,
		"gc_percent", s.pace, "gc_percent_from", s.paceSource)
	return s
}
