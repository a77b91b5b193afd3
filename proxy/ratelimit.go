package proxy

import (
	"hash/maphash"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// RateLimit is a route's token bucket per key (configs.RateLimit).
type RateLimit struct {
	// Rate is tokens a second; Burst the bucket's size.
	Rate  float64
	Burst int
	// Key is client_address, route or header:NAME.
	Key string
	// MaxKeys bounds the buckets kept.
	MaxKeys int
}

// limiterShards spreads a limiter's buckets over locks, so requests of
// different keys rarely wait for each other.
const limiterShards = 16

// limiter is a route's buckets. A bucket is its tokens and when they were
// last counted; one that has refilled to the full burst is the same as no
// bucket, so it may be dropped at any time. A shard past its share of
// MaxKeys drops every full bucket and, if that was not enough, an eighth
// of its buckets at random (map order): under a flood of distinct keys,
// memory stays bounded and keys seen once expire.
type limiter struct {
	rate     float64 // tokens per nanosecond
	burst    float64
	perShard int
	key      string // client_address, route, or the header's canonical name
	byHeader bool
	seed     maphash.Seed
	shards   [limiterShards]limiterShard
}

type limiterShard struct {
	mu      sync.Mutex
	buckets map[string]*bucket
	_       [40]byte // keep shards' locks on separate cache lines
}

type bucket struct {
	tokens float64
	at     int64 // ns since processStart when tokens was counted
}

func newLimiter(rl RateLimit) *limiter {
	l := &limiter{
		rate:     rl.Rate / float64(time.Second),
		burst:    float64(max(rl.Burst, 1)),
		perShard: max(rl.MaxKeys/limiterShards, 1),
		key:      rl.Key,
		seed:     maphash.MakeSeed(),
	}
	if name, ok := strings.CutPrefix(rl.Key, "header:"); ok {
		l.key, l.byHeader = http.CanonicalHeaderKey(name), true
	}
	for i := range l.shards {
		l.shards[i].buckets = map[string]*bucket{}
	}
	return l
}

// keyOf is the bucket key of a request.
func (l *limiter) keyOf(r *http.Request, lst *listener) string {
	switch {
	case l.byHeader:
		return r.Header.Get(l.key)
	case l.key == "route":
		return ""
	}
	return lst.clientAddress(r)
}

// allow takes a token for key at now (since processStart). When there is
// none it returns false and how long until there is one.
func (l *limiter) allow(key string, now time.Duration) (bool, time.Duration) {
	s := &l.shards[maphash.String(l.seed, key)%limiterShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	t := int64(now)
	b := s.buckets[key]
	if b == nil {
		if len(s.buckets) >= l.perShard {
			l.shrink(s, t)
		}
		b = &bucket{tokens: l.burst, at: t}
		s.buckets[key] = b
	}
	b.tokens = min(l.burst, b.tokens+float64(t-b.at)*l.rate)
	b.at = t
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration(math.Ceil((1 - b.tokens) / l.rate))
}

// shrink makes room in a full shard: buckets that have refilled go, then
// an eighth of the rest at random. The caller holds s.mu.
func (l *limiter) shrink(s *limiterShard, now int64) {
	for k, b := range s.buckets {
		if b.tokens+float64(now-b.at)*l.rate >= l.burst {
			delete(s.buckets, k)
		}
	}
	if len(s.buckets) < l.perShard {
		return
	}
	drop := max(len(s.buckets)/8, 1)
	for k := range s.buckets {
		delete(s.buckets, k)
		if drop--; drop == 0 {
			return
		}
	}
}

// size is the number of buckets kept, for tests.
func (l *limiter) size() int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += len(s.buckets)
		s.mu.Unlock()
	}
	return n
}

// retryAfter is a Retry-After value for a wait: whole seconds, at least 1.
func retryAfter(wait time.Duration) string {
	return strconv.FormatInt(max(int64(math.Ceil(wait.Seconds())), 1), 10)
}
