package instance

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/azimuthproxy/azimuth/balancer"
	"github.com/azimuthproxy/azimuth/configs"
	"github.com/azimuthproxy/azimuth/discovery"
	"github.com/azimuthproxy/azimuth/health"
	"github.com/hashicorp/consul/api"
)

// keepTimeout bounds an admin call's write to Consul: an agent that does
// not answer must not hold the operator's call.
const keepTimeout = 5 * time.Second

// overrides keeps the operator's drains, enables and evacuation beyond
// the process's memory. Without Consul sharing, an admin call changes
// inForce and the state file. With it, an admin call writes Consul's KV
// store, then inForce and this proxy; the watch applies every answer of
// the region's KV as a diff against inForce, and keeps it in the state
// file for a start while the agent is away. A change that could not be
// written to Consul applies to this proxy only (not in inForce), and the
// next KV change to the same key decides.
//
// inForce is applied again after every commit (new pools, backends back
// in the file) and after every Consul set of a pool (a drained backend
// that left and came back).
type overrides struct {
	i     *Instance
	proxy string // this host's name, in the marks it makes

	mu      sync.Mutex
	inForce discovery.Overrides
	file    string
	loaded  bool // the state file was read (the first commit)

	// The watch of the shared overrides; written by commit (under the
	// instance's reloading lock), read under mu.
	shared    *discovery.SharedOverrides
	sharedKey string // client and prefix the watch runs with
	stop      context.CancelFunc
	done      chan struct{}
}

func newOverrides(i *Instance) *overrides {
	host, _ := os.Hostname()
	return &overrides{i: i, proxy: host, inForce: discovery.Overrides{}}
}

// firstReadTimeout bounds the first plan's read of the shared overrides:
// a proxy starting while its agent is away starts from the state file.
const firstReadTimeout = 2 * time.Second

// overridesPlan is a plan's override settings. The first plan reads the
// overrides in force, so that they apply before any listener serves: from
// Consul when shared (the state file if the agent does not answer), else
// from the state file.
type overridesPlan struct {
	file   string
	shared *discovery.SharedOverrides // the watch to start; nil: none, or the running one
	key    string                     // client and prefix the watch runs with; "" for none
	first  discovery.Overrides        // set by the first plan only
	source string                     // where first came from
}

// plan prepares cfg's override settings. It cannot fail: a state file or
// an agent that cannot be read is logged, and the proxy starts without
// what it would have said. Called under the instance's reloading lock.
func (o *overrides) plan(cfg *configs.Config, client *api.Client) overridesPlan {
	op := overridesPlan{file: cfg.Overrides.File}
	if client != nil && cfg.Overrides.ConsulPrefix != configs.OverridesNotShared {
		op.key = fmt.Sprintf("%p|%s|%s", client, cfg.Overrides.ConsulPrefix, cfg.Consul.Datacenter)
		if op.key != o.sharedKey {
			op.shared = discovery.NewSharedOverrides(client, cfg.Overrides.ConsulPrefix, cfg.Consul.Datacenter, o.i.logger)
		}
	}
	if o.loaded {
		return op
	}
	op.first, op.source = discovery.Overrides{}, "none"
	if op.file != "" {
		kept, err := discovery.LoadOverrides(op.file)
		if err != nil {
			o.i.logger.Error("reading overrides file; starting without it", "file", op.file, "error", err)
		} else {
			op.first, op.source = kept, "file"
		}
	}
	if op.shared != nil {
		ctx, cancel := context.WithTimeout(o.i.ctx, firstReadTimeout)
		defer cancel()
		now, err := op.shared.Read(ctx)
		if err != nil {
			o.i.logger.Warn("reading overrides from consul at start failed; starting from the overrides file", "error", err, "file", op.file)
		} else {
			op.first, op.source = now, "consul"
		}
	}
	return op
}

// commit takes a plan's settings: the overrides read by the first plan,
// the Consul watch started, restarted or stopped, and every override in
// force applied to the pools the new config has. Called by Commit before
// any listener serves the new generation.
func (o *overrides) commit(op overridesPlan) {
	o.mu.Lock()
	o.file = op.file
	if op.first != nil {
		o.loaded, o.inForce = true, op.first
		if len(op.first) > 0 {
			o.i.logger.Info("overrides in force at start", "source", op.source, "overrides", len(op.first))
		}
		if op.source == "consul" {
			_ = o.save()
		}
	}
	o.mu.Unlock()

	if op.key != o.sharedKey {
		o.stopWatch()
		if op.shared != nil {
			o.startWatch(op.shared, op.key)
		}
	}

	o.mu.Lock()
	defer o.mu.Unlock()
	for _, k := range slices.SortedFunc(maps.Keys(o.inForce), discovery.CompareOverrideKeys) {
		o.apply(k, o.inForce[k], true, "in force")
	}
}

// startWatch runs s's watch until stopWatch or the instance's end.
func (o *overrides) startWatch(s *discovery.SharedOverrides, key string) {
	ctx, cancel := context.WithCancel(o.i.ctx)
	done := make(chan struct{})
	o.mu.Lock()
	o.shared, o.sharedKey, o.stop, o.done = s, key, cancel, done
	o.mu.Unlock()
	o.i.logger.Info("overrides shared through consul", "prefix", s.Prefix())
	go func() {
		defer close(done)
		_ = s.Watch(ctx, o.fromConsul)
	}()
}

// stopWatch ends the running watch, if any, and waits for it.
func (o *overrides) stopWatch() {
	o.mu.Lock()
	stop, done := o.stop, o.done
	o.shared, o.sharedKey, o.stop, o.done = nil, "", nil, nil
	o.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
}

// fromConsul applies the region's overrides as the KV store holds them:
// what is new is set, what is gone is cleared.
func (o *overrides) fromConsul(now discovery.Overrides) {
	o.mu.Lock()
	defer o.mu.Unlock()
	set, cleared := now.Diff(o.inForce)
	for _, k := range set {
		o.apply(k, now[k], true, "consul")
	}
	for _, k := range cleared {
		o.apply(k, o.inForce[k], false, "consul")
	}
	o.inForce = now
	o.save()
}

// Keep is the admin handler's keeper for drains and enables.
func (o *overrides) Keep(r *http.Request, h health.Override, apply func()) error {
	return o.keep(r.Context(), overrideKey(h), h.Drain, o.mark(r), apply)
}

// Kept reports whether a drain is in force (as this proxy last read it).
func (o *overrides) Kept(h health.Override) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	_, ok := o.inForce[overrideKey(h)]
	return ok
}

// overrideKey is the key of the admin handler's override.
func overrideKey(h health.Override) discovery.OverrideKey {
	if h.Backend != "" {
		return discovery.OverrideKey{Kind: discovery.BackendDrain, Pool: h.Pool, Name: h.Backend}
	}
	return discovery.OverrideKey{Kind: discovery.ZoneDrain, Pool: h.Pool, Name: h.Zone}
}

// mark is who makes an override through the admin call r, and when.
func (o *overrides) mark(r *http.Request) discovery.Mark {
	by, _ := r.Context().Value(tokenName{}).(string)
	return o.markBy(by)
}

// markBy is an override's mark: made now, by the token named by ("none"
// when the admin API takes no token), on this proxy.
func (o *overrides) markBy(by string) discovery.Mark {
	if by == "" {
		by = "none"
	}
	return discovery.Mark{At: time.Now().UTC().Truncate(time.Millisecond), By: by, Proxy: o.proxy}
}

// keep records an override set (on) or cleared, and runs apply under the
// lock the watch applies under, so this proxy ends as the record: in
// Consul when shared, else in inForce and the state file. apply runs
// even when recording fails (the override then holds here only).
func (o *overrides) keep(ctx context.Context, k discovery.OverrideKey, on bool, m discovery.Mark, apply func()) error {
	o.mu.Lock()
	shared := o.shared
	if shared == nil {
		defer o.mu.Unlock()
		if on {
			o.inForce[k] = m
		} else {
			delete(o.inForce, k)
		}
		apply()
		return o.save()
	}
	o.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, keepTimeout)
	defer cancel()
	var err error
	if on {
		err = shared.Put(ctx, k, m)
	} else {
		err = shared.Delete(ctx, k)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if err == nil {
		// What Consul now holds is in force here too: the watch's next
		// answer, which may come after the key changed again (set and
		// deleted between two answers), is compared with it.
		if on {
			o.inForce[k] = m
		} else {
			delete(o.inForce, k)
		}
	}
	apply()
	return err
}

// save writes inForce to the state file, if there is one. The caller
// holds mu.
func (o *overrides) save() error {
	if o.file == "" {
		return nil
	}
	if err := discovery.SaveOverrides(o.file, o.inForce, time.Now()); err != nil {
		o.i.logger.Error("writing overrides file", "file", o.file, "error", err)
		return fmt.Errorf("writing overrides file: %w", err)
	}
	return nil
}

// apply makes one override take effect here (on) or end, and logs it when
// that changed anything. A pool, zone or backend this proxy does not have
// now is skipped: the override applies when it comes. The caller holds mu.
func (o *overrides) apply(k discovery.OverrideKey, m discovery.Mark, on bool, source string) {
	changed := false
	switch k.Kind {
	case discovery.Evacuation:
		changed = o.i.setEvacuated(on, m)
	case discovery.ZoneDrain:
		if p := o.i.registry.Lookup(k.Pool); p != nil {
			changed = p.SetZoneDrained(k.Name, on)
		}
	case discovery.BackendDrain:
		if p := o.i.registry.Lookup(k.Pool); p != nil {
			if b := p.Backend(k.Name); b != nil {
				changed = b.SetDrained(on)
			}
		}
	}
	if changed {
		o.i.logger.Info("override applied", "override", k.String(), "on", on, "by", m.By, "at", m.At, "proxy", m.Proxy, "source", source)
	}
}

// poolUpdated applies the backend drains in force to pool's backends
// after a new set: a drained backend that left and came back is drained
// again.
func (o *overrides) poolUpdated(pool string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for k, m := range o.inForce {
		if k.Kind == discovery.BackendDrain && k.Pool == pool {
			o.apply(k, m, true, "in force")
		}
	}
}

// status is what /status shows of the overrides.
func (o *overrides) status() OverridesStatus {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := OverridesStatus{File: o.file, InForce: []OverrideStatus{}}
	if o.shared != nil {
		s.ConsulPrefix = o.shared.Prefix()
	}
	for _, k := range slices.SortedFunc(maps.Keys(o.inForce), discovery.CompareOverrideKeys) {
		m := o.inForce[k]
		s.InForce = append(s.InForce, OverrideStatus{Kind: string(k.Kind), Pool: k.Pool, Name: k.Name, At: m.At, By: m.By, Proxy: m.Proxy})
	}
	return s
}

// OverridesStatus is /status's overrides: where they are kept and those in
// force (for a proxy sharing them: as the region's KV store last held them).
type OverridesStatus struct {
	File         string           `json:"file,omitempty"`
	ConsulPrefix string           `json:"consul_prefix,omitempty"`
	InForce      []OverrideStatus `json:"in_force"`
}

// OverrideStatus is one override in force.
type OverrideStatus struct {
	Kind  string    `json:"kind"`
	Pool  string    `json:"pool,omitempty"`
	Name  string    `json:"name,omitempty"`
	At    time.Time `json:"at"`
	By    string    `json:"by"`
	Proxy string    `json:"proxy,omitempty"`
}

// drainSink is a Consul pool's sink: the set goes to the pool, then the
// backend drains in force apply to it.
type drainSink struct {
	pool      *balancer.Pool
	overrides *overrides
}

func (s drainSink) Update(specs []balancer.Spec) {
	s.pool.Update(specs)
	s.overrides.poolUpdated(s.pool.Name())
}

var _ discovery.Sink = drainSink{}
