package instance

import (
	"context"
	"sync"
	"time"
)

// Drain takes the instance out of service, the shutdown sequence for
// DNS-failover pairs: readiness fails at once; the listeners keep serving
// for the running config's shutdown.drain_delay, so the health checks in
// front notice; then they stop accepting and the requests in flight finish
// within shutdown.grace; then the pools stop and the admin listener
// closes. When ctx ends first, what is still open closes at once. A plan
// in progress is committed or discarded first; none starts after.
func (i *Instance) Drain(ctx context.Context) {
	i.draining.Store(true)
	i.reloading.Lock()
	defer i.reloading.Unlock()
	cfg := i.cfg()
	if cfg == nil {
		return // never committed: nothing runs
	}
	i.logger.Info("draining: readiness fails now", "drain_delay", cfg.Shutdown.DrainDelay.String(), "grace", cfg.Shutdown.Grace.String())
	delay := time.NewTimer(cfg.Shutdown.DrainDelay)
	select {
	case <-delay.C:
	case <-ctx.Done():
		delay.Stop()
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Shutdown.Grace)
	defer cancel()
	i.stopAll(ctx)
	if i.readyz != nil {
		_ = i.readyz.Shutdown(ctx)
	}
	// After the admin API: no override comes in or goes out any more.
	_ = i.admin.srv.Shutdown(ctx)
	i.overrides.stopWatch()
}

// stopAll closes every listener gracefully within ctx and stops the pools.
func (i *Instance) stopAll(ctx context.Context) {
	i.mu.Lock()
	slots, pools := i.slots, i.pools
	i.slots, i.pools = nil, nil
	i.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range slots {
		wg.Go(func() {
			if err := s.shutdown(ctx, nil); err != nil {
				i.logger.Warn("listener closed before its requests finished", "listener", s.name, "error", err)
			}
		})
	}
	wg.Wait()
	stopACME(slots)
	i.bg.Wait()
	for _, rt := range pools {
		rt.stop()
	}
}
