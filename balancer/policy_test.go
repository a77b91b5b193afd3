package balancer

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

// policies are the policies besides least-conn, which has tests of its own.
var policies = []Policy{PolicyRoundRobin, PolicyRandom, PolicyP2C, PolicyHash}

// keyed picks with a hash key (the hash policy's common case) from n
// different keys in turn.
func keyed(t testing.TB, p *Pool, n int, keys int) (byAddr, byZone map[string]int) {
	t.Helper()
	byAddr, byZone = map[string]int{}, map[string]int{}
	for i := range n {
		k := Key{Hash: mix64(uint64(i % keys)), HasHash: true}
		l, err := p.PickKeyed(t.Context(), nil, &k)
		if err != nil {
			t.Fatalf("pick: %v", err)
		}
		byAddr[l.Backend().Address()]++
		byZone[l.Backend().Zone()]++
		l.Release()
	}
	return byAddr, byZone
}

// TestPolicyDistribution: over 40,000 picks on four backends of weights
// 1, 2, 3 and 4, each policy gives each backend its weight's share, within
// a tolerance stated per policy, relative to the expected count: round
// robin is exact (0.1%, one pick in a thousand for rounding), random and
// two choices draw with a seeded source (5%, about 3 standard deviations
// of a binomial count at this size), and hash over 10,000 keys is as even
// as its Maglev table (5%). Picks are released at once, so two choices
// always ties and keeps the first draw: it must be weighted too.
func TestPolicyDistribution(t *testing.T) {
	tests := []struct {
		policy Policy
		tol    float64
	}{
		{PolicyRoundRobin, 0.001},
		{PolicyRandom, 0.05},
		{PolicyP2C, 0.05},
		{PolicyHash, 0.05},
	}
	const picks = 40000
	for _, tt := range tests {
		t.Run(tt.policy.String(), func(t *testing.T) {
			p := testPool(Options{Policy: tt.policy})
			p.Update([]Spec{spec(1, 1, 1), spec(1, 2, 2), spec(1, 3, 3), spec(1, 4, 4)})
			var got map[string]int
			if tt.policy == PolicyHash {
				got, _ = keyed(t, p, picks, 10000)
			} else {
				got, _ = countPicks(t, p, picks, nil)
			}
			worst := 0.0
			for h := 1; h <= 4; h++ {
				want := float64(picks) * float64(h) / 10
				dev := math.Abs(float64(got[addr(1, h)])-want) / want
				worst = max(worst, dev)
				if dev > tt.tol {
					t.Errorf("weight %d: %d picks, want %.0f ± %.1f%%", h, got[addr(1, h)], want, tt.tol*100)
				}
			}
			t.Logf("worst deviation from the weighted share: %.2f%%", worst*100)
		})
	}
}

// TestRoundRobinIsSmooth: weights 5, 1, 1 give nginx's interleaved order,
// not five in a row.
func TestRoundRobinIsSmooth(t *testing.T) {
	p := testPool(Options{Policy: PolicyRoundRobin})
	p.Update([]Spec{spec(1, 1, 5), spec(1, 2, 1), spec(1, 3, 1)})
	var order []string
	for range 14 {
		l, err := p.Pick(t.Context(), nil)
		if err != nil {
			t.Fatal(err)
		}
		order = append(order, strings.TrimSuffix(strings.TrimPrefix(l.Backend().Address(), "127.0.1."), ":8080"))
		l.Release()
	}
	if got, want := strings.Join(order, " "), "1 1 2 1 3 1 1 1 1 2 1 3 1 1"; got != want {
		t.Errorf("order %q, want %q", got, want)
	}
}

// TestP2CAvoidsTheBusyBackend: of two equal backends, the one holding
// requests loses every draw that offers the other.
func TestP2CAvoidsTheBusyBackend(t *testing.T) {
	p := testPool(Options{Policy: PolicyP2C})
	p.Update([]Spec{spec(1, 1, 1), spec(1, 2, 1)})
	holdOn(p.Backend(addr(1, 1)), 5)
	got, _ := countPicks(t, p, 1000, nil)
	if got[addr(1, 1)] != 0 {
		t.Errorf("busy backend got %d of 1000 picks, want 0", got[addr(1, 1)])
	}
}

// TestPoliciesKeepThePoolRules: every policy stays in the local zone,
// spills when it loses health, never picks a backend that is down,
// drained or at its max_conns (outside panic), sends a retry to another
// zone, and in panic uses backends that are down.
func TestPoliciesKeepThePoolRules(t *testing.T) {
	for _, pol := range append([]Policy{PolicyLeastConn}, policies...) {
		t.Run(pol.String(), func(t *testing.T) {
			newPool := func(o Options) *Pool {
				o.Policy = pol
				p := testPool(o)
				p.Update(spread(9, 3)) // 3 zones of 3
				return p
			}
			pick := func(p *Pool, n int, tried *Tried) (map[string]int, map[string]int) {
				if pol == PolicyHash {
					byAddr, byZone := map[string]int{}, map[string]int{}
					for i := range n {
						k := Key{Hash: mix64(uint64(i)), HasHash: true}
						l, err := p.PickKeyed(t.Context(), tried, &k)
						if err != nil {
							t.Fatalf("pick: %v", err)
						}
						byAddr[l.Backend().Address()]++
						byZone[l.Backend().Zone()]++
						l.Release()
					}
					return byAddr, byZone
				}
				return countPicks(t, p, n, tried)
			}

			p := newPool(Options{LocalZone: "a", SpillBelow: 0.7})
			if _, z := pick(p, 300, nil); z["a"] != 300 {
				t.Errorf("healthy local zone: picks by zone %v, want all in a", z)
			}
			p.Backend(addr(1, 1)).SetState(StateDown)
			p.Backend(addr(1, 2)).SetDrained(true)
			byAddr, z := pick(p, 3000, nil)
			if byAddr[addr(1, 1)]+byAddr[addr(1, 2)] != 0 {
				t.Errorf("down or drained backend picked: %v", byAddr)
			}
			// One healthy of three, spill below 0.7: a share of 1/3/0.7
			// stays home.
			if share := float64(z["a"]) / 3000; share < 0.40 || share > 0.55 {
				t.Errorf("local share after losing 2 of 3: %.2f, want about 0.48", share)
			}

			p = newPool(Options{LocalZone: "a"})
			capped := []Spec{spec(1, 1, 1).withMax(1), spec(1, 2, 1), spec(1, 3, 1)}
			p.Update(append(capped, spread(9, 3)[3:]...))
			held, err := p.PickKeyed(t.Context(), nil, &Key{Pin: p.Backend(addr(1, 1)).Pin()})
			if err != nil || held.Backend().Address() != addr(1, 1) {
				t.Fatalf("pinned pick: %v %v", held.Backend(), err)
			}
			if byAddr, _ := pick(p, 300, nil); byAddr[addr(1, 1)] != 0 {
				t.Errorf("backend at max_conns got %d picks", byAddr[addr(1, 1)])
			}
			held.Release()

			var tried Tried
			tried.Add(p.Backend(addr(1, 2)))
			if _, z := pick(p, 300, &tried); z["a"] != 0 {
				t.Errorf("retry stayed in the tried zone: %v", z)
			}

			p = newPool(Options{LocalZone: "a", PanicBelow: 0.5})
			for _, b := range p.Backends() {
				if b.Zone() != "c" {
					b.SetState(StateDown)
				}
			}
			if _, z := pick(p, 900, nil); z["a"] == 0 || z["b"] == 0 {
				t.Errorf("panic: picks by zone %v, want down zones used too", z)
			}
		})
	}
}

// TestHashKeepsKeysWhenOneLeaves: with 20 backends, removing one moves
// its own keys and hardly any other: of 10,000 keys, at most 1% (100)
// that were not on the leaver move (Maglev's rebuild is not perfectly
// minimal; measured 0.3% here, at most 0.52% over every choice of
// leaver), so about 95% stay: the leaver's own share is 1/20 give or
// take the keys' sampling (5.14% moved in all here). Adding it back
// restores every key.
func TestHashKeepsKeysWhenOneLeaves(t *testing.T) {
	specs := make([]Spec, 20)
	for i := range specs {
		specs[i] = Spec{Address: fmt.Sprintf("10.0.0.%d:80", i+1), Weight: 1}
	}
	p := testPool(Options{Policy: PolicyHash})
	p.Update(specs)
	const keys = 10000
	where := func() []string {
		out := make([]string, keys)
		for i := range out {
			k := Key{Hash: mix64(uint64(i)), HasHash: true}
			l, err := p.PickKeyed(t.Context(), nil, &k)
			if err != nil {
				t.Fatal(err)
			}
			out[i] = l.Backend().Address()
			l.Release()
		}
		return out
	}
	before := where()
	leaver := specs[7].Address
	p.Update(append(specs[:7:7], specs[8:]...))
	after := where()
	moved, others, own := 0, 0, 0
	for i := range before {
		if before[i] == leaver {
			own++
		}
		if before[i] != after[i] {
			moved++
			if before[i] != leaver {
				others++
			}
		}
		if after[i] == leaver {
			t.Fatalf("key %d still on the removed backend", i)
		}
	}
	t.Logf("moved %d of %d keys (%.2f%%): the leaver's %d, and %d of the others'", moved, keys, 100*float64(moved)/keys, own, others)
	if others > keys/100 {
		t.Errorf("%d keys of staying backends moved, want at most %d", others, keys/100)
	}
	if kept := 1 - float64(moved)/keys; kept < 0.94 {
		t.Errorf("kept %.2f%% of keys, want about 95%%", kept*100)
	}
	p.Update(specs)
	back := where()
	for i := range before {
		if before[i] != back[i] {
			t.Fatalf("key %d: %s before, %s after the backend came back", i, before[i], back[i])
		}
	}
}

// TestHashSkipsAnUnavailableBackend: a key whose backend is down, drained,
// at its max_conns or already tried goes to the next backend in table
// order, the same one every time and on every pool built alike, and comes
// back when its backend does. Only its keys move.
func TestHashSkipsAnUnavailableBackend(t *testing.T) {
	specs := make([]Spec, 10)
	for i := range specs {
		specs[i] = Spec{Address: fmt.Sprintf("10.0.0.%d:80", i+1), Weight: 1, MaxConns: 100}
	}
	newPool := func(seed uint64) *Pool {
		p := NewPool("web", Options{Policy: PolicyHash}, WithRand(seeded(seed)))
		p.Update(specs)
		return p
	}
	p, twin := newPool(1), newPool(99)
	const keys = 2000
	lookup := func(p *Pool, i int, tried *Tried) string {
		k := Key{Hash: mix64(uint64(i)), HasHash: true}
		l, err := p.PickKeyed(t.Context(), tried, &k)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Release()
		return l.Backend().Address()
	}
	home := make([]string, keys)
	for i := range home {
		home[i] = lookup(p, i, nil)
	}
	victim := p.Backend(specs[3].Address)
	outs := []struct {
		name    string
		out, in func()
		tried   bool
	}{
		{name: "down", out: func() { victim.SetState(StateDown) }, in: func() { victim.SetState(StateUp) }},
		{name: "drained", out: func() { victim.SetDrained(true) }, in: func() { victim.SetDrained(false) }},
		{name: "at max_conns", out: func() { holdOn(victim, 100) }, in: func() { holdOn(victim, -100) }},
		{name: "tried", out: func() {}, in: func() {}, tried: true},
	}
	for _, o := range outs {
		t.Run(o.name, func(t *testing.T) {
			o.out()
			var tried *Tried
			if o.tried {
				tried = &Tried{}
				tried.Add(victim)
			}
			next := map[int]string{}
			for i := range home {
				got := lookup(p, i, tried)
				if home[i] != victim.Address() {
					if got != home[i] {
						t.Fatalf("key %d moved from %s to %s, yet its backend is fine", i, home[i], got)
					}
					continue
				}
				if got == victim.Address() {
					t.Fatalf("key %d still on the unavailable backend", i)
				}
				if again := lookup(p, i, tried); again != got {
					t.Fatalf("key %d went to %s, then %s", i, got, again)
				}
				next[i] = got
			}
			spreadTo := map[string]bool{}
			for _, a := range next {
				spreadTo[a] = true
			}
			if len(spreadTo) < 5 {
				t.Errorf("the victim's %d keys went to %d backends, want them spread", len(next), len(spreadTo))
			}
			o.in()
			for i := range home {
				if got := lookup(p, i, nil); got != home[i] {
					t.Fatalf("key %d on %s after its backend came back, want %s", i, got, home[i])
				}
			}
		})
	}
	// The table depends on the backends only: another pool agrees.
	for i := range home {
		if got := lookup(twin, i, nil); got != home[i] {
			t.Fatalf("key %d: %s on one pool, %s on its twin", i, home[i], got)
		}
	}
}

// TestHashHonoursZonePreference: keys are hashed within the local zone
// while it is healthy, and when it is drained they go to the other zones,
// each key to the same backend every time.
func TestHashHonoursZonePreference(t *testing.T) {
	p := testPool(Options{Policy: PolicyHash, LocalZone: "a", SpillBelow: 0.7})
	p.Update(spread(30, 3))
	_, z := keyed(t, p, 3000, 3000)
	if z["a"] != 3000 {
		t.Errorf("picks by zone %v, want all in the local zone", z)
	}
	byAddr, _ := keyed(t, p, 3000, 3000)
	if len(byAddr) != 10 {
		t.Errorf("keys went to %d local backends, want all 10", len(byAddr))
	}
	p.SetZoneDrained("a", true)
	_, z = keyed(t, p, 3000, 3000)
	if z["a"] != 0 || z["b"] == 0 || z["c"] == 0 {
		t.Errorf("zone a drained: picks by zone %v, want b and c only", z)
	}
	// Within a zone the choice is the key's: the same key, the same
	// backend, whichever zone the draw chose.
	seen := map[string]string{}
	for range 20 {
		k := Key{Hash: 42, HasHash: true}
		l, err := p.PickKeyed(t.Context(), nil, &k)
		if err != nil {
			t.Fatal(err)
		}
		b := l.Backend()
		l.Release()
		if prev, ok := seen[b.Zone()]; ok && prev != b.Address() {
			t.Fatalf("key 42 in zone %s went to %s and %s", b.Zone(), prev, b.Address())
		}
		seen[b.Zone()] = b.Address()
	}
}

// TestHashWithoutKeyIsLeastConn: a request with no hash key (its header
// or cookie missing) goes to the least-loaded backend.
func TestHashWithoutKeyIsLeastConn(t *testing.T) {
	p := testPool(Options{Policy: PolicyHash})
	p.Update([]Spec{spec(1, 1, 1), spec(1, 2, 1), spec(1, 3, 1)})
	holdOn(p.Backend(addr(1, 1)), 3)
	holdOn(p.Backend(addr(1, 3)), 3)
	for range 5 {
		l, err := p.PickKeyed(t.Context(), nil, &Key{})
		if err != nil {
			t.Fatal(err)
		}
		if a := l.Backend().Address(); a != addr(1, 2) {
			t.Fatalf("keyless pick went to %s, want the idle %s", a, addr(1, 2))
		}
		l.Release()
	}
}

// TestHashRampAdmitsKeysGradually: a backend in slow start takes a
// growing share of its keys, the same keys throughout.
func TestHashRampAdmitsKeysGradually(t *testing.T) {
	clk := newClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	p := testPool(Options{Policy: PolicyHash, SlowStart: 100 * time.Second}, clk.option())
	p.Update(spread(4, 1))
	newcomer := Spec{Address: "127.0.1.9:8080", Zone: "a", Weight: 1}
	p.Update(append(spread(4, 1), newcomer))
	count := func() (map[int]bool, int) {
		got := map[int]bool{}
		for i := range 5000 {
			k := Key{Hash: mix64(uint64(i)), HasHash: true}
			l, _ := p.PickKeyed(t.Context(), nil, &k)
			if l.Backend().Address() == newcomer.Address {
				got[i] = true
			}
			l.Release()
		}
		return got, len(got)
	}
	early, n1 := count()
	clk.Advance(50 * time.Second)
	mid, n2 := count()
	clk.Advance(60 * time.Second)
	_, n3 := count()
	t.Logf("newcomer's keys: %d at the start, %d half way, %d after", n1, n2, n3)
	if !(n1 < n2 && n2 < n3) || n3 < 800 {
		t.Errorf("newcomer's keys %d, %d, %d: want growing to about 1000", n1, n2, n3)
	}
	for i := range early {
		if !mid[i] {
			t.Fatalf("key %d left the ramping backend half way", i)
		}
	}
}

// TestPinGoesToItsBackend: a pinned first attempt goes to its backend,
// in any zone, while it is available; otherwise, and on retries, and for
// a token no backend has, the pick is the policy's.
func TestPinGoesToItsBackend(t *testing.T) {
	p := testPool(Options{LocalZone: "a"})
	p.Update(spread(6, 3))
	far := p.Backend(addr(3, 2))
	pin := &Key{Pin: far.Pin()}
	for range 10 {
		l, err := p.PickKeyed(t.Context(), nil, pin)
		if err != nil || l.Backend() != far {
			t.Fatalf("pinned pick went to %v (%v), want %s", l.Backend(), err, far.Address())
		}
		l.Release()
	}
	// A retry leaves the zone it tried, even for the pinned backend.
	var tried Tried
	tried.Add(p.Backend(addr(1, 1)))
	near := &Key{Pin: p.Backend(addr(1, 2)).Pin()}
	for range 20 {
		l, err := p.PickKeyed(t.Context(), &tried, near)
		if err != nil {
			t.Fatal(err)
		}
		if l.Backend().Zone() == "a" {
			t.Fatalf("retry of a request pinned to %s went back to the tried zone, to %s", addr(1, 2), l.Backend().Address())
		}
		l.Release()
	}
	far.SetState(StateDown)
	_, z := countPicksKeyed(t, p, 100, pin)
	if z["a"] != 100 {
		t.Errorf("pinned backend down: picks by zone %v, want the local zone's", z)
	}
	far.SetState(StateUp)
	_, z = countPicksKeyed(t, p, 100, &Key{Pin: 12345})
	if z["a"] != 100 {
		t.Errorf("unknown pin: picks by zone %v, want the local zone's", z)
	}
}

func countPicksKeyed(t *testing.T, p *Pool, n int, k *Key) (byAddr, byZone map[string]int) {
	t.Helper()
	byAddr, byZone = map[string]int{}, map[string]int{}
	for range n {
		l, err := p.PickKeyed(t.Context(), nil, k)
		if err != nil {
			t.Fatalf("pick: %v", err)
		}
		byAddr[l.Backend().Address()]++
		byZone[l.Backend().Zone()]++
		l.Release()
	}
	return byAddr, byZone
}

// TestConfigureChangesPolicy: new settings change the policy of the next
// pick, and a change to hash builds the current set's tables.
func TestConfigureChangesPolicy(t *testing.T) {
	p := testPool(Options{})
	p.Update([]Spec{spec(1, 1, 3), spec(1, 2, 1)})
	p.Configure(Options{Policy: PolicyRoundRobin})
	got, _ := countPicks(t, p, 400, nil)
	if got[addr(1, 1)] != 300 {
		t.Errorf("round robin after Configure: %v, want 300 and 100", got)
	}
	if p.current.Load().maglev.p.Load() != nil {
		t.Fatal("tables built for a pool that does not hash")
	}
	p.Configure(Options{Policy: PolicyHash})
	if p.current.Load().maglev.p.Load() == nil {
		t.Error("Configure to hash did not build the tables")
	}
}

// TestPolicyPicksDoNotAllocate: every policy's pick, keyed or not, pinned
// or not, allocates nothing, as least-conn's does.
func TestPolicyPicksDoNotAllocate(t *testing.T) {
	for _, pol := range append([]Policy{PolicyLeastConn}, policies...) {
		p := testPool(Options{Policy: pol, LocalZone: "a", SpillBelow: 0.7})
		p.Update(spread(100, 3))
		pin := p.Backend(addr(2, 1)).Pin()
		i := uint64(0)
		allocs := testing.AllocsPerRun(200, func() {
			i++
			k := Key{Hash: mix64(i), HasHash: true, Pin: pin * (i & 1)}
			l, err := p.PickKeyed(t.Context(), nil, &k)
			if err != nil {
				t.Fatal(err)
			}
			l.Release()
		})
		if allocs != 0 {
			t.Errorf("%s: %.1f allocations per pick, want 0", pol, allocs)
		}
	}
}
