package discovery

import "time"

// State is a watcher's view of its sync with Consul, for /readyz and
// /status.
type State struct {
	// Synced is true when the last query succeeded. It is false before the
	// first answer and after any error, until the next answer.
	Synced bool `json:"synced"`
	// LastSuccess is when the last answer arrived; zero if none has.
	LastSuccess time.Time `json:"last_success,omitzero"`
	// LastError is the last query error, kept after a later success so
	// status pages can show what happened; "" if none.
	LastError string `json:"last_error,omitempty"`
	// LastErrorTime is when LastError happened.
	LastErrorTime time.Time `json:"last_error_time,omitzero"`
	// Backends is the size of the last set Consul gave the sink.
	Backends int `json:"backends"`
	// Index is the Consul index the next blocking query waits on.
	Index uint64 `json:"index"`
	// FilteredByACLs is true when Consul left instances out of the last
	// answer because the token may not read them: an empty or short set
	// then says more about the token than about the service, so the
	// answer is treated as an error and the pool keeps its last set.
	FilteredByACLs bool `json:"filtered_by_acls,omitempty"`
	// Holding is true when Consul's last answer had no usable instance
	// after it had given some: the pool keeps the last set it got.
	Holding bool `json:"holding,omitempty"`
	// FromCache is true while the pool serves the set cached on disk by
	// an earlier run (the agent has not answered since this one started):
	// the set may be stale. CachedAt is when that set was saved.
	FromCache bool      `json:"from_cache,omitempty"`
	CachedAt  time.Time `json:"cached_at,omitzero"`
}
