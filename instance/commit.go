package instance

import (
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/azimuthproxy/azimuth/configs"
	edgetls "github.com/azimuthproxy/azimuth/tls"
)

// Apply makes cfg the running config: Plan, then Commit. On error the
// running config is as it was.
func (i *Instance) Apply(cfg *configs.Config) error {
	p, err := i.Plan(cfg)
	if err != nil {
		return err
	}
	i.Commit(p)
	return nil
}

// Commit makes p the running config: pools take their settings and start
// what they run, the generation is published, listeners get their
// handlers and new ones start accepting, the admin API takes its settings,
// and what the config no longer has is retired (a listener within the
// new config's shutdown grace). Nothing in it can fail.
func (i *Instance) Commit(p *Plan) {
	defer i.reloading.Unlock()
	i.mu.Lock()
	defer i.mu.Unlock()
	cfg := p.cfg
	i.zone = cfg.Zone
	i.consul, i.consulOptions = p.consul, p.consulOpts
	runtimes := map[string]*poolRuntime{}
	for _, pp := range p.pools {
		rt := i.commitPool(pp)
		runtimes[rt.name] = rt
	}
	i.overrides.commit(p.overrides)
	i.server.Publish(p.gen)
	for j := range cfg.Listeners {
		l := &cfg.Listeners[j]
		p.next[l.Address].name = l.Name
		p.next[l.Address].handler.set(i.listenerHandler(l, cfg, p.next))
	}
	i.commitACME(p)
	for _, s := range p.opened {
		s.serve()
	}
	for addr, s := range i.slots {
		if next := p.next[addr]; next != s {
			i.retireSlot(s, next, cfg.Shutdown.Grace) // next is nil when the listener left
		}
	}
	for name, rt := range i.pools {
		if runtimes[name] == nil {
			rt.stop()
		}
	}
	i.registry.Retain(slices.Collect(maps.Keys(runtimes)))
	i.logChanges(cfg, runtimes, p.next)
	i.pools, i.slots = runtimes, p.next
	i.commitAdmin(p.admin, cfg)
	i.current.Store(cfg)
	now := time.Now()
	i.loadedAt.Store(&now)
	i.recordReload(nil)
}

// Discard drops a plan that will not be committed: the sockets it bound
// close and the metric series of the pools only it had go.
func (i *Instance) Discard(p *Plan) {
	defer i.reloading.Unlock()
	i.discard(p)
}

// discard releases what a plan made, whatever step it stopped at.
func (i *Instance) discard(p *Plan) {
	for _, s := range p.opened {
		s.close()
	}
	discardACME(p)
	if p.gen != nil {
		i.server.Discard(p.gen)
	}
	p.admin.close()
}

// listenerHandler is what a listener serves in this generation.
func (i *Instance) listenerHandler(l *configs.Listener, cfg *configs.Config, slots map[string]*slot) http.Handler {
	if l.RedirectHTTPS {
		port := 443
		for _, other := range cfg.Listeners {
			if other.Name == l.RedirectTo {
				port = slots[other.Address].port()
			}
		}
		return i.plainHandler(cfg, edgetls.RedirectHTTPS(port))
	}
	if l.TLS == nil {
		return i.plainHandler(cfg, i.server.Handler(l.Name))
	}
	return i.server.Handler(l.Name)
}

// logChanges says what a reload changed.
func (i *Instance) logChanges(cfg *configs.Config, pools map[string]*poolRuntime, slots map[string]*slot) {
	var added, removed, lAdded, lRemoved []string
	for n := range pools {
		if i.pools[n] == nil {
			added = append(added, n)
		}
	}
	for n := range i.pools {
		if pools[n] == nil {
			removed = append(removed, n)
		}
	}
	for addr, s := range slots {
		if i.slots[addr] != s {
			lAdded = append(lAdded, s.name+"@"+addr)
		}
	}
	for addr, s := range i.slots {
		if slots[addr] != s {
			lRemoved = append(lRemoved, s.name+"@"+addr)
		}
	}
	i.logger.Info("config applied", "source", cfg.Source, "hash", cfg.Hash,
		"pools_added", added, "pools_removed", removed, "listeners_opened", lAdded, "listeners_closed", lRemoved)
}

// plainHandler is h, in front of which a plain listener answers the ACME
// HTTP-01 challenges when a listener of cfg offers them.
func (i *Instance) plainHandler(cfg *configs.Config, h http.Handler) http.Handler {
	for _, l := range cfg.Listeners {
		if l.TLS != nil && l.TLS.ACME != nil && slices.Contains(l.TLS.ACME.Challenges, configs.ChallengeHTTP01) {
			return i.acmeChallenges(h)
		}
	}
	return h
}
