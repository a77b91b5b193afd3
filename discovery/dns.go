package discovery

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/azimuthproxy/azimuth/balancer"
)

// Resolver looks up the addresses of a host name. *net.Resolver has the
// method (net.DefaultResolver); tests inject their own.
type Resolver interface {
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
}

var _ Resolver = (*net.Resolver)(nil)

// dnsLookupTimeout bounds one lookup of one name (or the refresh interval,
// if shorter): a resolver that does not answer must not hold the others'
// next round back.
const dnsLookupTimeout = 5 * time.Second

// unixPrefix starts the address of a backend on a Unix domain socket; such
// an address is passed on as it is.
const unixPrefix = "unix:"

// DNSConfig is everything a DNSWatcher needs.
type DNSConfig struct {
	// Pool names the pool in logs.
	Pool string
	// Backends are the pool's file backends in the file's order. An IP
	// address or a Unix socket passes as it is; a host name stands for one
	// backend per address it resolves to, with its zone, weight and
	// max_conns. An address met twice keeps its first spec.
	Backends []balancer.Spec
	// Refresh is how often the names are resolved again. Go's resolver
	// does not tell the records' TTLs, so it is an interval.
	Refresh time.Duration
	// Resolver looks names up; nil uses net.DefaultResolver.
	Resolver Resolver
	// Sink receives the whole set each time it changes.
	Sink Sink
	// Logger receives the watcher's logs; nil discards them.
	Logger *slog.Logger
	// Now tells the time for State; nil uses time.Now.
	Now func() time.Time
	// Known are the addresses names resolved to last, from the watcher
	// this one replaces (its Known): a name that fails now keeps them, as
	// it would have in the old watcher.
	Known map[string][]string
}

// DNSWatcher resolves the host names among a pool's file backends and
// hands the sink the expanded set whenever it changes: at Publish, then
// every Refresh from Run. A name whose lookup fails keeps the addresses it
// had (the failure is logged and in State), the way a Consul watcher keeps
// its last set; a name that never resolved gives no backend. The sink is
// called by Publish's caller and then by Run's goroutine, never by both
// at once. State and Known may be read from any goroutine.
type DNSWatcher struct {
	pool     string
	specs    []balancer.Spec
	names    []string // the distinct host names, sorted
	refresh  time.Duration
	resolver Resolver
	sink     Sink
	log      *slog.Logger
	now      func() time.Time

	running atomic.Bool
	state   atomic.Pointer[DNSState]

	// Owned by whoever resolves: the plan's Resolve, then Run.
	entries  map[string]*dnsEntry
	complete bool // the last Resolve ran to its end, its context alive
	last     []balancer.Spec
	sent     bool
}

// dnsEntry is what the watcher knows of one name.
type dnsEntry struct {
	addrs         []string // last good answer, sorted; nil if none yet
	resolvedAt    time.Time
	err           string
	errAt         time.Time
	errorsInARow  int
	lookupResults []string // this round's, before it is applied
	lookupErr     error
}

// DNSState is a watcher's view of its names, for /status.
type DNSState struct {
	// RefreshSeconds is the interval names are resolved again at.
	RefreshSeconds float64 `json:"refresh_seconds"`
	// Names are the host names, sorted.
	Names []DNSName `json:"names"`
}

// DNSName is one host name: the addresses the pool uses for it and when
// it last resolved.
type DNSName struct {
	Name string `json:"name"`
	// Addresses are its last good answer's IP addresses; none if it never
	// resolved.
	Addresses []string `json:"addresses"`
	// ResolvedAt is when that answer came; zero if none has.
	ResolvedAt time.Time `json:"resolved_at,omitzero"`
	// Error is the last lookup's error while it fails, "" once it
	// resolves again; ErrorAt when it happened.
	Error   string    `json:"error,omitempty"`
	ErrorAt time.Time `json:"error_at,omitzero"`
}

// errNoAddress is the error of an answer with no address in it.
var errNoAddress = errors.New("no address in the answer")

// HasNames reports whether any spec's address is a host name, which a
// DNSWatcher must resolve.
func HasNames(specs []balancer.Spec) bool {
	return slices.ContainsFunc(specs, func(s balancer.Spec) bool { _, _, ok := nameOf(s.Address); return ok })
}

// nameOf splits addr into a host name and port; false for an IP address,
// a Unix socket or an address that does not split.
func nameOf(addr string) (host, port string, ok bool) {
	if strings.HasPrefix(addr, unixPrefix) {
		return "", "", false
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return "", "", false
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return "", "", false
	}
	return strings.ToLower(strings.TrimSuffix(host, ".")), port, true
}

// NewDNSWatcher checks cfg and builds a watcher; it resolves nothing.
func NewDNSWatcher(cfg DNSConfig) (*DNSWatcher, error) {
	if cfg.Sink == nil {
		return nil, errors.New("creating dns watcher: no sink")
	}
	if cfg.Refresh <= 0 {
		return nil, fmt.Errorf("creating dns watcher for pool %q: refresh %v is not above 0", cfg.Pool, cfg.Refresh)
	}
	w := &DNSWatcher{
		pool: cfg.Pool, specs: slices.Clone(cfg.Backends), refresh: cfg.Refresh,
		resolver: cfg.Resolver, sink: cfg.Sink, log: cfg.Logger, now: cfg.Now,
		entries: map[string]*dnsEntry{},
	}
	if w.resolver == nil {
		w.resolver = net.DefaultResolver
	}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	w.log = w.log.With("pool", cfg.Pool)
	if w.now == nil {
		w.now = time.Now
	}
	for _, s := range w.specs {
		if name, _, ok := nameOf(s.Address); ok && w.entries[name] == nil {
			w.entries[name] = &dnsEntry{addrs: slices.Clone(cfg.Known[name])}
			w.names = append(w.names, name)
		}
	}
	slices.Sort(w.names)
	w.storeState()
	return w, nil
}

// State returns the watcher's names as last resolved.
func (w *DNSWatcher) State() DNSState {
	return *w.state.Load()
}

// Known returns the addresses each name resolved to last, for the
// watcher that replaces this one (DNSConfig.Known).
func (w *DNSWatcher) Known() map[string][]string {
	st := w.state.Load()
	out := make(map[string][]string, len(st.Names))
	for _, n := range st.Names {
		if len(n.Addresses) > 0 {
			out[n.Name] = slices.Clone(n.Addresses)
		}
	}
	return out
}

// Resolve looks every name up once, all at once, within ctx, and records
// the answers; the sink gets nothing until Publish. The plan of a reload
// calls it, bounded, so that the pool's first set is known before it
// serves. Not while Run runs.
func (w *DNSWatcher) Resolve(ctx context.Context) {
	timeout := min(dnsLookupTimeout, w.refresh)
	var wg sync.WaitGroup
	for _, name := range w.names {
		e := w.entries[name]
		wg.Go(func() {
			lctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			ips, err := w.resolver.LookupIPAddr(lctx, name)
			e.lookupResults, e.lookupErr = addrStrings(ips), err
			if err == nil && len(e.lookupResults) == 0 {
				e.lookupErr = errNoAddress
			}
		})
	}
	wg.Wait()
	now := w.now()
	for _, name := range w.names {
		w.record(name, w.entries[name], now)
	}
	w.complete = ctx.Err() == nil
	w.storeState()
}

// record applies name's lookup of this round and logs what changed: the
// first failure of a run (later ones at debug level), the recovery.
func (w *DNSWatcher) record(name string, e *dnsEntry, now time.Time) {
	if err := e.lookupErr; err != nil {
		e.err, e.errAt = err.Error(), now
		e.errorsInARow++
		level := slog.LevelWarn
		if e.errorsInARow > 1 {
			level = slog.LevelDebug
		}
		msg := "resolving a backend name failed; it keeps its last addresses"
		if e.addrs == nil {
			msg = "resolving a backend name failed; it has never resolved, so it gives no backend"
		}
		w.log.Log(context.Background(), level, msg, "name", name, "error", err, "addresses", e.addrs, "errors_in_a_row", e.errorsInARow)
		return
	}
	if e.errorsInARow > 0 {
		w.log.Info("a backend name resolves again", "name", name, "errors_in_a_row", e.errorsInARow)
	}
	if !slices.Equal(e.addrs, e.lookupResults) {
		w.log.Info("a backend name resolves to new addresses", "name", name, "addresses", e.lookupResults, "was", e.addrs)
	}
	e.addrs, e.resolvedAt = e.lookupResults, now
	e.err, e.errAt, e.errorsInARow = "", time.Time{}, 0
}

// Publish hands the sink the set the last resolution gives, unless the
// sink has it already. A reload's commit calls it once before Run starts,
// so the pool serves the set from its first request.
func (w *DNSWatcher) Publish() {
	set := w.expand()
	if w.sent && slices.Equal(set, w.last) {
		return
	}
	w.sink.Update(slices.Clone(set))
	w.last, w.sent = set, true
	w.log.Info("backend set from dns", "backends", len(set), "names", len(w.names))
}

// Run resolves the names every Refresh and publishes each changed set
// until ctx is done, then returns ctx's error. A watcher whose Resolve did
// not finish (or never ran) resolves at once. It may be called once.
func (w *DNSWatcher) Run(ctx context.Context) error {
	if !w.running.CompareAndSwap(false, true) {
		return errors.New("dns watcher already running")
	}
	if !w.complete {
		w.round(ctx)
	}
	for {
		if !sleep(ctx, w.refresh) {
			return ctx.Err()
		}
		w.round(ctx)
	}
}

// round resolves and publishes once; a panic (in the sink, say) is logged
// and the loop goes on.
func (w *DNSWatcher) round(ctx context.Context) {
	defer func() {
		if p := recover(); p != nil {
			w.log.Error("dns round panicked", "panic", p)
		}
	}()
	w.Resolve(ctx)
	if ctx.Err() != nil {
		return // stopping: what the cancelled lookups said is no news
	}
	w.Publish()
}

// expand returns the set: every spec, a name's replaced by one per
// address, sorted by address, an address met twice keeping its first.
func (w *DNSWatcher) expand() []balancer.Spec {
	out := make([]balancer.Spec, 0, len(w.specs))
	seen := make(map[string]bool, len(w.specs))
	add := func(s balancer.Spec) {
		if !seen[s.Address] {
			seen[s.Address] = true
			out = append(out, s)
		}
	}
	for _, s := range w.specs {
		name, port, ok := nameOf(s.Address)
		if !ok {
			add(s)
			continue
		}
		for _, ip := range w.entries[name].addrs {
			s.Address = net.JoinHostPort(ip, port)
			add(s)
		}
	}
	slices.SortFunc(out, func(a, b balancer.Spec) int { return cmp.Compare(a.Address, b.Address) })
	return out
}

// storeState publishes the names' state for State and Known.
func (w *DNSWatcher) storeState() {
	st := &DNSState{RefreshSeconds: w.refresh.Seconds(), Names: make([]DNSName, 0, len(w.names))}
	for _, name := range w.names {
		e := w.entries[name]
		st.Names = append(st.Names, DNSName{Name: name, Addresses: append([]string{}, e.addrs...),
			ResolvedAt: e.resolvedAt, Error: e.err, ErrorAt: e.errAt})
	}
	w.state.Store(st)
}

// addrStrings returns the distinct addresses of an answer, IPv4-mapped
// ones as IPv4, sorted.
func addrStrings(ips []net.IPAddr) []string {
	addrs := make([]netip.Addr, 0, len(ips))
	for _, ip := range ips {
		a, ok := netip.AddrFromSlice(ip.IP)
		if !ok {
			continue
		}
		a = a.Unmap()
		if ip.Zone != "" && a.Is6() {
			a = a.WithZone(ip.Zone)
		}
		addrs = append(addrs, a)
	}
	slices.SortFunc(addrs, netip.Addr.Compare)
	addrs = slices.Compact(addrs)
	out := make([]string, len(addrs))
	for i, a := range addrs {
		out[i] = a.String()
	}
	return out
}
