package discovery

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/azimuthproxy/azimuth/balancer"
)

// fakeResolver answers from a table a test changes as it goes.
type fakeResolver struct {
	mu      sync.Mutex
	answers map[string][]string
	errs    map[string]error
	calls   int
}

func newFakeResolver() *fakeResolver {
	return &fakeResolver{answers: map[string][]string{}, errs: map[string]error{}}
}

func (r *fakeResolver) set(name string, ips ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.answers[name] = ips
	delete(r.errs, name)
}

func (r *fakeResolver) fail(name string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs[name] = err
}

func (r *fakeResolver) lookups() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls
}

func (r *fakeResolver) LookupIPAddr(_ context.Context, host string) ([]net.IPAddr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if err := r.errs[host]; err != nil {
		return nil, err
	}
	ips, ok := r.answers[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	var out []net.IPAddr
	for _, s := range ips {
		ip, zone, _ := strings.Cut(s, "%")
		out = append(out, net.IPAddr{IP: net.ParseIP(ip), Zone: zone})
	}
	return out, nil
}

// lockedBuffer is a log sink the test reads while the watcher writes.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func addrsOf(specs []balancer.Spec) []string {
	out := make([]string, len(specs))
	for i, s := range specs {
		out[i] = s.Address
	}
	return out
}

func newTestDNS(t *testing.T, r Resolver, sink Sink, logs *lockedBuffer, known map[string][]string, specs ...balancer.Spec) *DNSWatcher {
	t.Helper()
	w, err := NewDNSWatcher(DNSConfig{
		Pool: "web", Backends: specs, Refresh: 30 * time.Second, Resolver: r, Sink: sink, Known: known,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// A name becomes one backend per address, IPv4 and IPv6, each with the
// entry's zone, weight and max_conns; IP addresses and sockets pass as
// they are; an address met twice keeps its first spec.
func TestDNSExpandsNames(t *testing.T) {
	r := newFakeResolver()
	r.set("api.internal", "10.0.0.2", "::ffff:10.0.0.1", "2001:db8::1", "10.0.0.2")
	r.set("other.internal", "10.0.0.9", "fe80::1%eth0")
	rec := newRecorder()
	var logs lockedBuffer
	w := newTestDNS(t, r, rec, &logs, nil,
		balancer.Spec{Address: "API.internal.:8080", Zone: "a", Weight: 3, MaxConns: 7},
		balancer.Spec{Address: "10.0.0.1:8080", Zone: "literal"},
		balancer.Spec{Address: "unix:/run/app.sock", Zone: "b"},
		balancer.Spec{Address: "other.internal:81", Zone: "c"},
		balancer.Spec{Address: "[::1]:9000"},
	)
	w.Resolve(context.Background())
	w.Publish()
	got, _ := rec.last()
	want := []balancer.Spec{
		{Address: "10.0.0.1:8080", Zone: "a", Weight: 3, MaxConns: 7},
		{Address: "10.0.0.2:8080", Zone: "a", Weight: 3, MaxConns: 7},
		{Address: "10.0.0.9:81", Zone: "c"},
		{Address: "[2001:db8::1]:8080", Zone: "a", Weight: 3, MaxConns: 7},
		{Address: "[::1]:9000"},
		{Address: "[fe80::1%eth0]:81", Zone: "c"},
		{Address: "unix:/run/app.sock", Zone: "b"},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("set\n%v\nwant\n%v", got, want)
	}
	st := w.State()
	if len(st.Names) != 2 || st.Names[0].Name != "api.internal" || st.Names[0].ResolvedAt.IsZero() ||
		!slices.Equal(st.Names[0].Addresses, []string{"10.0.0.1", "10.0.0.2", "2001:db8::1"}) {
		t.Errorf("state %+v", st)
	}
	if HasNames(want) || !HasNames([]balancer.Spec{{Address: "localhost:80"}}) {
		t.Error("HasNames: wrong on IP addresses, sockets or a name")
	}
	w.Publish()
	if n := rec.count(); n != 1 {
		t.Errorf("%d updates, want 1: an unchanged set is not sent again", n)
	}
}

// Run resolves every refresh interval and sends changed sets only; a
// name that fails keeps its last addresses, a name that never resolved
// gives none, and a recovered name counts again. Cancelling Run stops it.
func TestDNSRunRefreshesAndHolds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newFakeResolver()
		r.set("api.internal", "10.0.0.1", "::1")
		rec := newRecorder()
		var logs lockedBuffer
		w := newTestDNS(t, r, rec, &logs, nil,
			balancer.Spec{Address: "api.internal:80", Zone: "a"},
			balancer.Spec{Address: "later.internal:80", Zone: "b"},
			balancer.Spec{Address: "10.9.9.9:80", Zone: "b"},
		)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- w.Run(ctx) }()
		stopped := false
		defer func() { // a failed step must not leave Run in the bubble
			if !stopped {
				cancel()
				<-done
			}
		}()
		step := func(want ...string) {
			t.Helper()
			synctest.Wait()
			got, _ := rec.last()
			if !slices.Equal(addrsOf(got), want) {
				t.Fatalf("set %v, want %v", addrsOf(got), want)
			}
		}
		step("10.0.0.1:80", "10.9.9.9:80", "[::1]:80") // Run resolves at once: no Resolve before it
		if !strings.Contains(logs.String(), "it has never resolved, so it gives no backend") {
			t.Errorf("the name that never resolved was not logged:\n%s", logs.String())
		}

		r.fail("api.internal", errors.New("server misbehaving"))
		r.set("later.internal", "10.0.0.5")
		time.Sleep(30 * time.Second) // a refresh interval, on the bubble's clock
		step("10.0.0.1:80", "10.0.0.5:80", "10.9.9.9:80", "[::1]:80")
		if n := strings.Count(logs.String(), "it keeps its last addresses"); n != 1 {
			t.Errorf("the failure logged %d times at first, want 1", n)
		}
		if st := w.State(); st.Names[0].Error == "" || len(st.Names[0].Addresses) != 2 {
			t.Errorf("failing name's state %+v: want its error and its last addresses", st.Names[0])
		}

		updates := rec.count()
		time.Sleep(30 * time.Second)
		synctest.Wait()
		if n := rec.count(); n != updates {
			t.Errorf("%d updates after an unchanged round, want %d", n, updates)
		}

		r.set("api.internal", "10.0.0.2")
		time.Sleep(30 * time.Second)
		step("10.0.0.2:80", "10.0.0.5:80", "10.9.9.9:80")
		if st := w.State(); st.Names[0].Error != "" {
			t.Errorf("recovered name still shows error %q", st.Names[0].Error)
		}

		cancel()
		stopped = true
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v, want context.Canceled", err)
		}
	})
}

// A watcher that replaces another after a reload starts from the old
// one's addresses: a name failing at that moment keeps them. A Resolve
// that ran to its end before Run is not repeated at once.
func TestDNSKnownCarriesAcrossReplacement(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newFakeResolver()
		r.set("api.internal", "10.0.0.1", "10.0.0.2")
		var logs lockedBuffer
		old := newTestDNS(t, r, newRecorder(), &logs, nil, balancer.Spec{Address: "api.internal:80"})
		old.Resolve(context.Background())

		r.fail("api.internal", errors.New("timeout"))
		rec := newRecorder()
		w := newTestDNS(t, r, rec, &logs, old.Known(), balancer.Spec{Address: "api.internal:80", Weight: 2})
		w.Resolve(context.Background())
		w.Publish()
		got, _ := rec.last()
		want := []balancer.Spec{{Address: "10.0.0.1:80", Weight: 2}, {Address: "10.0.0.2:80", Weight: 2}}
		if !slices.Equal(got, want) {
			t.Fatalf("set %v, want %v", got, want)
		}

		calls := r.lookups()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = w.Run(ctx) }()
		defer func() { cancel(); <-done }()
		synctest.Wait()
		if n := r.lookups(); n != calls {
			t.Errorf("Run resolved at once after a complete Resolve (%d lookups, want %d)", n, calls)
		}
	})
}

func TestNewDNSWatcherRefusesBadConfig(t *testing.T) {
	for name, cfg := range map[string]DNSConfig{
		"no sink":         {Refresh: time.Second},
		"no refresh":      {Sink: newRecorder()},
		"negative period": {Sink: newRecorder(), Refresh: -time.Second},
	} {
		if _, err := NewDNSWatcher(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
