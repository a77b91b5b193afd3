package health

import (
	"context"
	"crypto/x509"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/balancer"
	"github.com/azimuthproxy/azimuth/internal/testwait"
)

// fixedJitter makes intervals exact: 0.5 is the middle of ±10%.
func fixedJitter() float64 { return 0.5 }

func activeOpts(rise, fall int) ActiveOptions {
	return ActiveOptions{Path: "/healthz", Interval: time.Hour, Timeout: time.Second, Rise: rise, Fall: fall}
}

func TestCheckerRiseFall(t *testing.T) {
	up, down := balancer.StateUp, balancer.StateDown
	cases := []struct {
		name       string
		rise, fall int
		min, max   int
		script     []step
		want       []balancer.State // state after each check
		toDown     float64          // transitions counted to down
	}{
		{"fall 3 takes three failures", 2, 3, 0, 0,
			[]step{fail(), fail(), fail()}, []balancer.State{up, up, down}, 1},
		{"a pass resets the fall count", 2, 3, 0, 0,
			[]step{fail(), fail(), ok(), fail(), fail(), fail()}, []balancer.State{up, up, up, up, up, down}, 1},
		{"rise 2 brings a down backend up", 2, 1, 0, 0,
			[]step{fail(), ok(), ok()}, []balancer.State{down, down, up}, 1},
		{"a failure resets the rise count", 2, 1, 0, 0,
			[]step{fail(), ok(), fail(), ok(), ok()}, []balancer.State{down, down, down, down, up}, 1},
		{"further failures change nothing", 1, 2, 0, 0,
			[]step{fail(), fail(), fail(), fail()}, []balancer.State{up, down, down, down}, 1},
		{"3xx passes by default", 1, 1, 0, 0,
			[]step{code(302), code(399), code(400)}, []balancer.State{up, up, down}, 1},
		{"expect_status 204 only", 1, 1, 204, 204,
			[]step{code(204), code(200), code(204)}, []balancer.State{up, down, up}, 1},
		{"flapping counts every transition", 1, 1, 0, 0,
			[]step{fail(), ok(), fail(), ok()}, []balancer.State{down, up, down, up}, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := newScripted(t, "", tc.script...)
			f := newFixture(t, balancer.Options{ActiveChecks: true}, specs("a", srv.Addr()))
			o := activeOpts(tc.rise, tc.fall)
			o.ExpectMin, o.ExpectMax = tc.min, tc.max
			c, err := NewChecker(f.t, o)
			if err != nil {
				t.Fatal(err)
			}
			b := f.backend(t, srv.Addr())
			for i, want := range tc.want {
				c.checkNow(context.Background(), b)
				if got := b.State(); got != want {
					t.Fatalf("after check %d: state %v, want %v", i+1, got, want)
				}
			}
			labels := map[string]string{"pool": "web", "backend": srv.Addr(), "zone": "a", "to": "down"}
			if got, _ := f.counter(t, "azimuth_backend_health_transitions_total", labels); got != tc.toDown {
				t.Errorf("transitions to down = %v, want %v", got, tc.toDown)
			}
			if got := f.logs.count(`"backend health changed"`, `"to":"down"`); got != int(tc.toDown) {
				t.Errorf("logged %d changes to down, want %v (one line per transition, none per check)", got, tc.toDown)
			}
			if srv.Hits() != len(tc.want) {
				t.Errorf("server saw %d checks, want %d", srv.Hits(), len(tc.want))
			}
		})
	}
}

func TestCheckerRequest(t *testing.T) {
	srv := newScripted(t, "127.0.1.7", ok())
	f := newFixture(t, balancer.Options{}, specs("a", srv.Addr()))
	o := activeOpts(1, 1)
	o.Host = "health.example"
	c, err := NewChecker(f.t, o)
	if err != nil {
		t.Fatal(err)
	}
	b := f.backend(t, srv.Addr())
	for range 3 {
		if err := c.checkNow(context.Background(), b); err != nil {
			t.Fatalf("check failed: %v", err)
		}
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	for i, h := range srv.hosts {
		if h != "health.example" {
			t.Errorf("check %d sent Host %q, want health.example", i, h)
		}
	}
	seen := map[string]bool{}
	for _, r := range srv.remotes {
		if seen[r] {
			t.Errorf("connection %s reused; each check must open its own", r)
		}
		seen[r] = true
	}
	info, _ := f.t.Info(srv.Addr())
	if info.LastCheck.IsZero() || info.LastError != "" || info.CheckSuccesses != 3 {
		t.Errorf("info = %+v, want a last check, no error, 3 successes", info)
	}
}

func TestCheckerHangIsCutAtTimeout(t *testing.T) {
	srv := newScripted(t, "", hang())
	f := newFixture(t, balancer.Options{}, specs("a", srv.Addr()))
	o := activeOpts(1, 1)
	o.Timeout = 100 * time.Millisecond
	c, err := NewChecker(f.t, o)
	if err != nil {
		t.Fatal(err)
	}
	b := f.backend(t, srv.Addr())
	start := time.Now()
	err = c.checkNow(context.Background(), b)
	elapsed := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("check of a hung backend: err = %v, want a deadline exceeded", err)
	}
	if elapsed < o.Timeout || elapsed > 10*o.Timeout {
		t.Errorf("check took %v, want about its timeout %v", elapsed, o.Timeout)
	}
	if b.State() != balancer.StateDown {
		t.Errorf("state %v, want down after fall 1", b.State())
	}
	info, _ := f.t.Info(srv.Addr())
	if info.LastError == "" || info.CheckFailures != 1 {
		t.Errorf("info = %+v, want the timeout recorded", info)
	}
}

func TestCheckerUnreachableBackend(t *testing.T) {
	srv := newScripted(t, "")
	addr := srv.Addr()
	srv.Close() // nothing listens there any more: connection refused
	f := newFixture(t, balancer.Options{}, specs("a", addr))
	c, err := NewChecker(f.t, activeOpts(1, 1))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.checkNow(context.Background(), f.backend(t, addr)); err == nil {
		t.Fatal("check of a closed port passed")
	}
	if got := f.backend(t, addr).State(); got != balancer.StateDown {
		t.Errorf("state %v, want down", got)
	}
}

func TestCheckerSchemes(t *testing.T) {
	cases := []struct {
		name      string
		scheme    string
		tls       bool
		h2c       bool
		wantProto int
	}{
		{"http/1.1", SchemeHTTP, false, false, 1},
		{"h2c prior knowledge", SchemeH2C, false, true, 2},
		{"https negotiates h2", SchemeHTTPS, true, false, 2},
		{"h2 over tls", SchemeH2, true, false, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := &scripted{quit: make(chan struct{})}
			srv := httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
			s.srv = srv
			t.Cleanup(s.Close)
			o := activeOpts(1, 1)
			o.Scheme = tc.scheme
			switch {
			case tc.tls:
				srv.EnableHTTP2 = true
				srv.StartTLS()
				pool := x509.NewCertPool()
				pool.AddCert(srv.Certificate())
				o.TLSConfig = srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
				o.TLSConfig.RootCAs = pool
			case tc.h2c:
				srv.Config.Protocols = new(http.Protocols)
				srv.Config.Protocols.SetHTTP1(true)
				srv.Config.Protocols.SetUnencryptedHTTP2(true)
				srv.Start()
			default:
				srv.Start()
			}
			addr := srv.Listener.Addr().String()
			f := newFixture(t, balancer.Options{}, specs("a", addr))
			c, err := NewChecker(f.t, o)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.checkNow(context.Background(), f.backend(t, addr)); err != nil {
				t.Fatalf("check failed: %v", err)
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			if len(s.protos) != 1 || s.protos[0] != tc.wantProto {
				t.Errorf("server saw protocols %v, want [%d]", s.protos, tc.wantProto)
			}
		})
	}
}

func TestCheckerPendingBackends(t *testing.T) {
	first := newScripted(t, "127.0.1.1", ok())
	good := newScripted(t, "127.0.1.2", ok())
	bad := newScripted(t, "127.0.1.3", fail())
	f := newFixture(t, balancer.Options{ActiveChecks: true}, specs("a", first.Addr()))
	if got := f.backend(t, first.Addr()).State(); got != balancer.StateUp {
		t.Fatalf("a backend of the first set is %v, want up before any check", got)
	}
	// An hour-long interval: only a pending backend is checked at once.
	c, err := NewChecker(f.t, activeOpts(3, 3), WithJitter(fixedJitter))
	if err != nil {
		t.Fatal(err)
	}
	f.pool.Update(specs("a", first.Addr(), good.Addr(), bad.Addr()))
	for _, a := range []string{good.Addr(), bad.Addr()} {
		if got := f.backend(t, a).State(); got != balancer.StatePending {
			t.Fatalf("backend %s joined as %v, want pending", a, got)
		}
	}
	for range 20 {
		lease, err := f.pool.Pick(context.Background(), nil)
		b := lease.Backend()
		if err != nil {
			t.Fatal(err)
		}
		if b.Address() != first.Addr() {
			t.Fatalf("picked pending backend %s before its first check", b.Address())
		}
		lease.Release()
	}
	stop := runOwned(t, c.Run)
	testwait.Until(t, 5*time.Second, "pending backends to get their first check", func() bool {
		return f.backend(t, good.Addr()).State() == balancer.StateUp &&
			f.backend(t, bad.Addr()).State() == balancer.StateDown
	})
	stop()
	if first.Hits() != 0 {
		t.Errorf("the first set's backend was checked %d times within a tenth of an hour-long interval", first.Hits())
	}
	if good.Hits() != 1 || bad.Hits() != 1 {
		t.Errorf("pending backends checked %d and %d times, want once each", good.Hits(), bad.Hits())
	}
}

func TestCheckerFollowsSetChanges(t *testing.T) {
	a := newScripted(t, "127.0.1.1", fail())
	b := newScripted(t, "127.0.2.1", ok())
	f := newFixture(t, balancer.Options{ActiveChecks: true}, specs("a", a.Addr()))
	o := activeOpts(1, 1)
	o.Interval = 20 * time.Millisecond
	o.Timeout = 500 * time.Millisecond
	c, err := NewChecker(f.t, o, WithJitter(fixedJitter))
	if err != nil {
		t.Fatal(err)
	}
	runOwned(t, c.Run)
	testwait.Until(t, 5*time.Second, "backend a to go down", func() bool {
		return f.backend(t, a.Addr()).State() == balancer.StateDown
	})
	seriesA := map[string]string{"pool": "web", "backend": a.Addr()}
	if f.series(t, "azimuth_backend_health_transitions_total", seriesA) == 0 {
		t.Fatal("no transition series for backend a")
	}

	f.pool.Update([]balancer.Spec{{Address: a.Addr(), Zone: "a"}, {Address: b.Addr(), Zone: "b"}})
	testwait.Until(t, 5*time.Second, "the new backend to be checked", func() bool {
		return f.pool.Backend(b.Addr()).State() == balancer.StateUp && b.Hits() >= 2
	})

	f.pool.Update(specs("b", b.Addr()))
	fence := b.Hits() + 2
	testwait.Until(t, 5*time.Second, "checks of the remaining backend", func() bool { return b.Hits() >= fence })
	aHits, bHits := a.Hits(), b.Hits()
	testwait.Until(t, 5*time.Second, "more checks of the remaining backend", func() bool { return b.Hits() >= bHits+3 })
	if a.Hits() != aHits {
		t.Errorf("removed backend still checked: %d hits, then %d", aHits, a.Hits())
	}
	if _, ok := f.t.Info(a.Addr()); ok {
		t.Error("removed backend still has health info")
	}
	if n := f.series(t, "azimuth_backend_health_transitions_total", seriesA); n != 0 {
		t.Errorf("removed backend keeps %d metric series", n)
	}
}

func TestCheckerConfigure(t *testing.T) {
	srv := newScripted(t, "", fail())
	f := newFixture(t, balancer.Options{}, specs("a", srv.Addr()))
	c, err := NewChecker(f.t, activeOpts(2, 3))
	if err != nil {
		t.Fatal(err)
	}
	b := f.backend(t, srv.Addr())
	c.checkNow(context.Background(), b)
	c.checkNow(context.Background(), b)
	bad := activeOpts(2, 0)
	if err := c.Configure(bad); err == nil {
		t.Fatal("Configure accepted fall 0")
	}
	o := activeOpts(2, 3)
	o.Interval = time.Minute
	if err := c.Configure(o); err != nil {
		t.Fatal(err)
	}
	if got := b.State(); got != balancer.StateUp {
		t.Fatalf("state %v after 2 of 3 failures", got)
	}
	c.checkNow(context.Background(), b)
	if got := b.State(); got != balancer.StateDown {
		t.Errorf("state %v, want down: the third failure after a reload must count", got)
	}
}

func TestActiveOptionsValidate(t *testing.T) {
	base := activeOpts(1, 1)
	cases := []struct {
		name   string
		edit   func(*ActiveOptions)
		wantOK bool
	}{
		{"valid", func(*ActiveOptions) {}, true},
		{"empty path means /", func(o *ActiveOptions) { o.Path = "" }, true},
		{"relative path", func(o *ActiveOptions) { o.Path = "healthz" }, false},
		{"no interval", func(o *ActiveOptions) { o.Interval = 0 }, false},
		{"no timeout", func(o *ActiveOptions) { o.Timeout = 0 }, false},
		{"rise 0", func(o *ActiveOptions) { o.Rise = 0 }, false},
		{"fall 0", func(o *ActiveOptions) { o.Fall = 0 }, false},
		{"inverted status range", func(o *ActiveOptions) { o.ExpectMin, o.ExpectMax = 300, 200 }, false},
		{"status out of range", func(o *ActiveOptions) { o.ExpectMin, o.ExpectMax = 200, 700 }, false},
		{"unknown scheme", func(o *ActiveOptions) { o.Scheme = "ftp" }, false},
		{"h2c", func(o *ActiveOptions) { o.Scheme = SchemeH2C }, true},
		{"negative fast interval", func(o *ActiveOptions) { o.FastInterval = -time.Second }, false},
		{"negative concurrency", func(o *ActiveOptions) { o.MaxConcurrent = -1 }, false},
	}
	f := newFixture(t, balancer.Options{}, nil)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := base
			tc.edit(&o)
			_, err := NewChecker(f.t, o)
			if (err == nil) != tc.wantOK {
				t.Errorf("NewChecker error = %v, want ok=%v", err, tc.wantOK)
			}
		})
	}
}
