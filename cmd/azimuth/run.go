package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/azimuthproxy/azimuth/configs"
)

// run loads the config at path and serves until ctx ends, then shuts down
// within the config's grace period. For now it serves the admin listener's
// /healthz only; the proxy's listeners are wired in here. SIGHUP re-reads
// the file and logs whether it is valid (with every problem's file:line).
func run(ctx context.Context, path string, stderr io.Writer) error {
	cfg, err := configs.Load(path)
	if err != nil {
		return err
	}
	logger, err := newLogger(cfg.Log, stderr)
	if err != nil {
		return err
	}
	logger.Info("config loaded", "source", cfg.Source, "hash", cfg.Hash)

	ln, err := net.Listen("tcp", cfg.Admin.Address)
	if err != nil {
		return fmt.Errorf("listening on admin address %s: %w", cfg.Admin.Address, err)
	}
	admin := &http.Server{
		Handler:           adminHandler(),
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- admin.Serve(ln) }()
	logger.Info("admin listening", "address", ln.Addr().String())

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	for {
		select {
		case <-ctx.Done():
			logger.Info("stopping", "grace", cfg.Shutdown.Grace)
			sctx, cancel := context.WithTimeout(context.Background(), cfg.Shutdown.Grace)
			defer cancel()
			if err := admin.Shutdown(sctx); err != nil {
				return fmt.Errorf("shutting down admin listener: %w", err)
			}
			<-served
			logger.Info("stopped")
			return nil
		case err := <-served:
			return fmt.Errorf("serving admin listener: %w", err)
		case <-hup:
			reloadCheck(logger, path)
		}
	}
}

// reloadCheck loads the file again and logs the outcome; the running
// config is kept either way until the proxy is wired in to swap it.
func reloadCheck(logger *slog.Logger, path string) {
	next, err := configs.Load(path)
	if err != nil {
		var errs *configs.Errors
		if errors.As(err, &errs) {
			for _, p := range errs.Problems {
				logger.Error("config reload rejected", "file", p.File, "line", p.Line, "key", p.Path, "problem", p.Msg, "at", p.String())
			}
			return
		}
		logger.Error("config reload rejected", "error", err)
		return
	}
	logger.Info("config reload checked", "source", next.Source, "hash", next.Hash)
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

// adminHandler serves the admin API: /healthz answers 200 "ok" while the
// process is alive.
func adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	})
	return mux
}
