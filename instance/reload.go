package instance

import (
	"errors"

	"github.com/azimuthproxy/azimuth/configs"
)

// Reload loads the config file at path and applies it, unless it is the
// running config (the same hash, and the last reload succeeded). A file
// that fails to load or apply changes nothing: the running config keeps
// serving, every problem is logged as FILE:LINE: key: problem, and /status
// and azimuth_config_last_reload_successful say so until a good file
// arrives. It returns the config it applied, or nil.
func (i *Instance) Reload(path string) (*configs.Config, error) {
	cfg, err := configs.Load(path)
	if err != nil {
		i.recordReload(err)
	} else {
		if cur := i.cfg(); cur != nil && cur.Hash == cfg.Hash && i.lastErr.Load() == nil {
			i.logger.Debug("config unchanged", "source", cfg.Source)
			return nil, nil
		}
		err = i.Apply(cfg)
	}
	if err != nil {
		var errs *configs.Errors
		if errors.As(err, &errs) {
			for _, p := range errs.Problems {
				i.logger.Error("config reload rejected", "file", p.File, "line", p.Line, "key", p.Path, "problem", p.Msg, "at", p.String())
			}
		} else {
			i.logger.Error("config reload rejected", "error", err)
		}
		return nil, err
	}
	i.logger.Info("config reloaded", "source", cfg.Source, "hash", cfg.Hash)
	return cfg, nil
}

// recordReload keeps a reload's outcome for /status and the reload
// metrics: err is why it failed, nil for a commit.
func (i *Instance) recordReload(err error) {
	if err == nil {
		i.lastErr.Store(nil)
		i.reloads.record(true)
		return
	}
	msg := err.Error()
	i.lastErr.Store(&msg)
	i.reloads.record(false)
}
