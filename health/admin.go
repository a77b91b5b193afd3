package health

import (
	"log/slog"
	"net/http"

	"github.com/azimuthproxy/azimuth/balancer"
	"github.com/azimuthproxy/azimuth/internal/httpjson"
)

// PoolLookup finds a pool by name; *balancer.Registry satisfies it.
type PoolLookup interface {
	Lookup(name string) *balancer.Pool
}

// Operator actions in the admin paths.
const (
	actionDrain  = "drain"
	actionEnable = "enable"
)

// AdminHandler serves the operator overrides, meant for the admin listener:
//
//	POST /pools/{pool}/zones/{zone}/drain      stop new requests to a zone
//	POST /pools/{pool}/zones/{zone}/enable     let them flow again
//	POST /pools/{pool}/backends/{address}/drain
//	POST /pools/{pool}/backends/{address}/enable
//
// Drained means no new requests; those in flight finish. A zone drain also
// covers backends that join the zone later. Answers are JSON: the new
// state, or {"error": ...} with 404 for an unknown pool, zone, backend or
// action and 405 for a method other than POST. Each override is logged once.
//
// keep, when not nil, is given each override before it applies here, to
// keep it beyond this process (a state file, or Consul for the whole
// region). When it fails the override still applies to this proxy and the
// answer is 503 with the error, so the operator knows the rest of the
// fleet did not get it.
func AdminHandler(pools PoolLookup, logger *slog.Logger, keep Keeper) http.Handler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	a := &admin{pools: pools, log: logger, keep: keep}
	mux := http.NewServeMux()
	mux.HandleFunc("/pools/{pool}/zones/{zone}/{action}", a.zone)
	mux.HandleFunc("/pools/{pool}/backends/{address}/{action}", a.backend)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		httpjson.Write(w, http.StatusNotFound, errorBody{Error: "no such admin path: " + r.URL.Path})
	})
	return mux
}

// Keeper keeps an operator's override beyond this process.
type Keeper interface {
	// Keep records o and runs apply, which makes it take effect here, in
	// the order the keeper records overrides (so two calls at once leave
	// this proxy as the record says). apply runs even when recording
	// fails.
	Keep(r *http.Request, o Override, apply func()) error
	// Kept reports whether o (a drain) is in force, so that a drained
	// backend that has left the pool can still be enabled.
	Kept(o Override) bool
}

// Override is one drain or enable an operator asked for: of a zone, or of
// a backend (by address).
type Override struct {
	Pool    string
	Zone    string // set for a zone's override
	Backend string // set for a backend's override
	Drain   bool
}

type admin struct {
	pools PoolLookup
	log   *slog.Logger
	keep  Keeper
}

// kept hands o to the keeper, which runs apply; the error, if any, is for
// the answer.
func (a *admin) kept(r *http.Request, o Override, apply func()) string {
	if a.keep == nil {
		apply()
		return ""
	}
	if err := a.keep.Keep(r, o, apply); err != nil {
		a.log.Error("operator override applies to this proxy only", "pool", o.Pool, "zone", o.Zone, "backend", o.Backend, "drain", o.Drain, "error", err)
		return err.Error()
	}
	return ""
}

// answer writes an override's answer: 503 when it could not be kept.
func answer(w http.ResponseWriter, keepErr string, body any) {
	code := http.StatusOK
	if keepErr != "" {
		code = http.StatusServiceUnavailable
	}
	httpjson.Write(w, code, body)
}

type errorBody struct {
	Error string `json:"error"`
}

// ZoneOverride is the answer to a zone drain or enable.
type ZoneOverride struct {
	Pool     string `json:"pool"`
	Zone     string `json:"zone"`
	Drained  bool   `json:"drained"`
	Changed  bool   `json:"changed"`
	Backends int    `json:"backends"` // backends of the zone now in the pool
	// Error says why the override applies to this proxy only (not kept
	// in the state file or shared through Consul); the status is 503.
	Error string `json:"error,omitempty"`
}

// BackendOverride is the answer to a backend drain or enable.
type BackendOverride struct {
	Pool    string `json:"pool"`
	Backend string `json:"backend"`
	Zone    string `json:"zone"`
	State   string `json:"state"`
	Drained bool   `json:"drained"`
	Changed bool   `json:"changed"`
	// Error: as ZoneOverride's.
	Error string `json:"error,omitempty"`
}

// start checks the method and action and finds the pool; on failure it has
// answered and returns nil.
func (a *admin) start(w http.ResponseWriter, r *http.Request) (*balancer.Pool, bool) {
	action := r.PathValue("action")
	if action != actionDrain && action != actionEnable {
		httpjson.Write(w, http.StatusNotFound, errorBody{Error: "unknown action " + action + ": want drain or enable"})
		return nil, false
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		httpjson.Write(w, http.StatusMethodNotAllowed, errorBody{Error: "method " + r.Method + " not allowed: use POST"})
		return nil, false
	}
	name := r.PathValue("pool")
	p := a.pools.Lookup(name)
	if p == nil {
		httpjson.Write(w, http.StatusNotFound, errorBody{Error: "unknown pool " + name})
		return nil, false
	}
	return p, action == actionDrain
}

func (a *admin) zone(w http.ResponseWriter, r *http.Request) {
	p, on := a.start(w, r)
	if p == nil {
		return
	}
	zone := r.PathValue("zone")
	n := 0
	for _, b := range p.Backends() {
		if b.Zone() == zone {
			n++
		}
	}
	// A drained zone with no backends left may still be enabled.
	if n == 0 && !p.ZoneDrained(zone) {
		httpjson.Write(w, http.StatusNotFound, errorBody{Error: "unknown zone " + zone + " in pool " + p.Name()})
		return
	}
	var changed bool
	keepErr := a.kept(r, Override{Pool: p.Name(), Zone: zone, Drain: on}, func() { changed = p.SetZoneDrained(zone, on) })
	a.log.Info("operator override", "pool", p.Name(), "zone", zone,
		"action", r.PathValue("action"), "changed", changed, "remote", r.RemoteAddr)
	answer(w, keepErr, ZoneOverride{Pool: p.Name(), Zone: zone, Drained: on, Changed: changed, Backends: n, Error: keepErr})
}

func (a *admin) backend(w http.ResponseWriter, r *http.Request) {
	p, on := a.start(w, r)
	if p == nil {
		return
	}
	addr := r.PathValue("address")
	b := p.Backend(addr)
	if b == nil && !on && a.keep != nil && a.keep.Kept(Override{Pool: p.Name(), Backend: addr, Drain: true}) {
		// Gone from the pool, but its drain is kept: forget it, or it
		// would apply again when the backend comes back.
		keepErr := a.kept(r, Override{Pool: p.Name(), Backend: addr}, func() {})
		a.log.Info("operator override", "pool", p.Name(), "backend", addr, "action", actionEnable, "changed", true, "remote", r.RemoteAddr)
		answer(w, keepErr, BackendOverride{Pool: p.Name(), Backend: addr, State: "gone", Changed: true, Error: keepErr})
		return
	}
	if b == nil {
		httpjson.Write(w, http.StatusNotFound, errorBody{Error: "unknown backend " + addr + " in pool " + p.Name()})
		return
	}
	var changed bool
	keepErr := a.kept(r, Override{Pool: p.Name(), Backend: addr, Drain: on}, func() { changed = b.SetDrained(on) })
	a.log.Info("operator override", "pool", p.Name(), "backend", addr, "zone", b.Zone(),
		"action", r.PathValue("action"), "changed", changed, "remote", r.RemoteAddr)
	answer(w, keepErr, BackendOverride{
		Pool: p.Name(), Backend: addr, Zone: b.Zone(), State: b.State().String(),
		Drained: b.Drained(), Changed: changed, Error: keepErr,
	})
}
