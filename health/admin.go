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
func AdminHandler(pools PoolLookup, logger *slog.Logger) http.Handler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	a := &admin{pools: pools, log: logger}
	mux := http.NewServeMux()
	mux.HandleFunc("/pools/{pool}/zones/{zone}/{action}", a.zone)
	mux.HandleFunc("/pools/{pool}/backends/{address}/{action}", a.backend)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		httpjson.Write(w, http.StatusNotFound, errorBody{Error: "no such admin path: " + r.URL.Path})
	})
	return mux
}

type admin struct {
	pools PoolLookup
	log   *slog.Logger
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
}

// BackendOverride is the answer to a backend drain or enable.
type BackendOverride struct {
	Pool    string `json:"pool"`
	Backend string `json:"backend"`
	Zone    string `json:"zone"`
	State   string `json:"state"`
	Drained bool   `json:"drained"`
	Changed bool   `json:"changed"`
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
	changed := p.SetZoneDrained(zone, on)
	a.log.Info("operator override", "pool", p.Name(), "zone", zone,
		"action", r.PathValue("action"), "changed", changed, "remote", r.RemoteAddr)
	httpjson.Write(w, http.StatusOK, ZoneOverride{Pool: p.Name(), Zone: zone, Drained: on, Changed: changed, Backends: n})
}

func (a *admin) backend(w http.ResponseWriter, r *http.Request) {
	p, on := a.start(w, r)
	if p == nil {
		return
	}
	addr := r.PathValue("address")
	b := p.Backend(addr)
	if b == nil {
		httpjson.Write(w, http.StatusNotFound, errorBody{Error: "unknown backend " + addr + " in pool " + p.Name()})
		return
	}
	changed := b.SetDrained(on)
	a.log.Info("operator override", "pool", p.Name(), "backend", addr, "zone", b.Zone(),
		"action", r.PathValue("action"), "changed", changed, "remote", r.RemoteAddr)
	httpjson.Write(w, http.StatusOK, BackendOverride{
		Pool: p.Name(), Backend: addr, Zone: b.Zone(), State: b.State().String(),
		Drained: b.Drained(), Changed: changed,
	})
}
