package discovery

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"
)

// DefaultOverridePrefix is where overrides live in Consul's KV store when
// the config names no prefix. Every proxy of a region must share one, and
// regions that share a Consul datacenter need one each.
const DefaultOverridePrefix = "azimuth/overrides/"

// SharedOverrides keeps overrides in Consul's KV store, one key each under
// a prefix:
//
//	PREFIX/evacuated
//	PREFIX/pools/POOL/zones/ZONE
//	PREFIX/pools/POOL/backends/ADDRESS
//
// (path segments escaped), each holding the Mark as JSON. Every proxy of
// the region watches the prefix with blocking queries, so a change made
// through one proxy's admin API reaches the others as soon as the agent
// answers, well within a second.
type SharedOverrides struct {
	kv     *api.KV
	dc     string
	prefix string
	log    *slog.Logger
	timing Timing
}

// NewSharedOverrides keeps overrides under prefix ("" for
// DefaultOverridePrefix) in datacenter dc ("" for the agent's) of client.
func NewSharedOverrides(client *api.Client, prefix, dc string, logger *slog.Logger) *SharedOverrides {
	if prefix == "" {
		prefix = DefaultOverridePrefix
	}
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &SharedOverrides{kv: client.KV(), dc: dc, prefix: prefix, log: logger.With("consul_prefix", prefix), timing: Timing{}.withDefaults()}
}

// Prefix is the KV prefix the overrides live under, ending in "/".
func (s *SharedOverrides) Prefix() string { return s.prefix }

// kvKey is the KV key of an override.
func (s *SharedOverrides) kvKey(k OverrideKey) string {
	switch k.Kind {
	case Evacuation:
		return s.prefix + "evacuated"
	case ZoneDrain:
		return s.prefix + "pools/" + url.PathEscape(k.Pool) + "/zones/" + url.PathEscape(k.Name)
	default:
		return s.prefix + "pools/" + url.PathEscape(k.Pool) + "/backends/" + url.PathEscape(k.Name)
	}
}

// parseKey reads back a KV key kvKey made; ok is false for anything else
// under the prefix, which is left alone.
func (s *SharedOverrides) parseKey(key string) (k OverrideKey, ok bool) {
	rest, found := strings.CutPrefix(key, s.prefix)
	if !found {
		return k, false
	}
	if rest == "evacuated" {
		return OverrideKey{Kind: Evacuation}, true
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 4 || parts[0] != "pools" {
		return k, false
	}
	pool, err1 := url.PathUnescape(parts[1])
	name, err2 := url.PathUnescape(parts[3])
	if err1 != nil || err2 != nil || pool == "" || name == "" {
		return k, false
	}
	switch parts[2] {
	case "zones":
		return OverrideKey{Kind: ZoneDrain, Pool: pool, Name: name}, true
	case "backends":
		return OverrideKey{Kind: BackendDrain, Pool: pool, Name: name}, true
	}
	return k, false
}

// Put records an override in force for the whole region.
func (s *SharedOverrides) Put(ctx context.Context, k OverrideKey, m Mark) error {
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	w := (&api.WriteOptions{Datacenter: s.dc}).WithContext(ctx)
	if _, err := s.kv.Put(&api.KVPair{Key: s.kvKey(k), Value: data}, w); err != nil {
		return fmt.Errorf("writing %s to consul: %w", k, err)
	}
	return nil
}

// Delete ends an override for the whole region.
func (s *SharedOverrides) Delete(ctx context.Context, k OverrideKey) error {
	w := (&api.WriteOptions{Datacenter: s.dc}).WithContext(ctx)
	if _, err := s.kv.Delete(s.kvKey(k), w); err != nil {
		return fmt.Errorf("deleting %s from consul: %w", k, err)
	}
	return nil
}

// Watch follows the prefix until ctx ends, calling apply with every
// override in force after each answer of the agent (the first, then one
// per change of the prefix, or one per wait without a change). Every
// answer goes to apply, unchanged ones too: the caller may have applied
// an override of its own since (an admin call), and a key set and
// deleted between two answers must still clear it. While the agent cannot
// be reached it retries (250ms, doubling to 1s) and calls nothing: the
// overrides applied last stay in force. It returns ctx's error.
func (s *SharedOverrides) Watch(ctx context.Context, apply func(Overrides)) error {
	var (
		index     uint64
		errsInRow int
	)
	for {
		o, next, err := s.list(ctx, index)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			errsInRow++
			index = 0 // a restarted agent's index may be behind ours
			level := slog.LevelWarn
			if errsInRow > 1 {
				level = slog.LevelDebug
			}
			delay := backoff(errsInRow, s.timing.BackoffBase, s.timing.BackoffMax, rand.Float64())
			s.log.Log(ctx, level, "reading overrides from consul failed; keeping the last ones", "error", err, "errors_in_a_row", errsInRow, "retry_in", delay)
			if !sleep(ctx, delay) {
				return ctx.Err()
			}
			continue
		}
		if errsInRow > 0 {
			s.log.Info("consul answers again with overrides", "errors_in_a_row", errsInRow)
			errsInRow = 0
		}
		index = next
		apply(o)
		// Rate limit: a prefix that changes all the time cannot make the
		// loop spin.
		if !sleep(ctx, s.timing.MinInterval) {
			return ctx.Err()
		}
	}
}

// Read returns the overrides in force now.
func (s *SharedOverrides) Read(ctx context.Context) (Overrides, error) {
	o, _, err := s.list(ctx, 0)
	return o, err
}

// list runs one blocking query on the prefix.
func (s *SharedOverrides) list(ctx context.Context, index uint64) (Overrides, uint64, error) {
	qctx, cancel := context.WithTimeout(ctx, s.timing.Wait+s.timing.Wait/16+10*time.Second)
	defer cancel()
	q := (&api.QueryOptions{Datacenter: s.dc, WaitIndex: index, WaitTime: s.timing.Wait}).WithContext(qctx)
	pairs, meta, err := s.kv.List(s.prefix, q)
	if err != nil {
		return nil, 0, fmt.Errorf("listing %s: %w", s.prefix, err)
	}
	o := Overrides{}
	for _, p := range pairs {
		k, ok := s.parseKey(p.Key)
		if !ok {
			continue
		}
		var m Mark
		if err := json.Unmarshal(p.Value, &m); err != nil {
			// The key is what holds the override; a value written by
			// hand is still an override, only without who and when.
			m = Mark{By: "unknown (value is not a mark: " + err.Error() + ")"}
		}
		o[k] = m
	}
	return o, nextIndex(index, meta.LastIndex), nil
}
