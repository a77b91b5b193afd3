package discovery

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/internal/consultest"
	"github.com/azimuthproxy/azimuth/internal/testwait"
	"github.com/hashicorp/consul/api"
)

func TestOverridesDiff(t *testing.T) {
	z := OverrideKey{Kind: ZoneDrain, Pool: "web", Name: "a"}
	b := OverrideKey{Kind: BackendDrain, Pool: "web", Name: "127.0.0.1:80"}
	e := OverrideKey{Kind: Evacuation}
	m1 := Mark{By: "alice"}
	m2 := Mark{By: "bob"}
	for _, tc := range []struct {
		name         string
		now, prev    Overrides
		set, cleared []OverrideKey
	}{
		{"nothing", Overrides{}, nil, nil, nil},
		{"all new", Overrides{z: m1, e: m1}, Overrides{}, []OverrideKey{e, z}, nil},
		{"all gone", Overrides{}, Overrides{z: m1, b: m1}, nil, []OverrideKey{b, z}},
		{"made again by someone else", Overrides{z: m2}, Overrides{z: m1}, nil, nil},
		{"one each", Overrides{z: m1, b: m1}, Overrides{z: m1, e: m1}, []OverrideKey{b}, []OverrideKey{e}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set, cleared := tc.now.Diff(tc.prev)
			if !reflect.DeepEqual(set, tc.set) || !reflect.DeepEqual(cleared, tc.cleared) {
				t.Errorf("Diff = set %v cleared %v, want set %v cleared %v", set, cleared, tc.set, tc.cleared)
			}
		})
	}
}

func TestOverridesFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state", "overrides.json")
	if o, err := LoadOverrides(path); err != nil || len(o) != 0 {
		t.Fatalf("a missing file = %v, %v; want none, no error", o, err)
	}
	at := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	want := Overrides{
		{Kind: Evacuation}:                                          {At: at, By: "alice", Proxy: "p1"},
		{Kind: ZoneDrain, Pool: "web", Name: "b"}:                   {At: at, By: "bob"},
		{Kind: BackendDrain, Pool: "web", Name: "[::1]:8080"}:       {At: at, By: "bob"},
		{Kind: BackendDrain, Pool: "api", Name: "unix:/run/a.sock"}: {At: at, By: "carol"},
	}
	if err := SaveOverrides(path, want, at); err != nil {
		t.Fatal(err)
	}
	got, err := LoadOverrides(path)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("read back %v, %v; want %v", got, err, want)
	}
	for name, content := range map[string]string{
		"not json":          "{",
		"zone without pool": `{"overrides":[{"kind":"zone","name":"a"}]}`,
		"unknown kind":      `{"overrides":[{"kind":"region","pool":"web","name":"a"}]}`,
	} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadOverrides(path); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: error %v, want one naming %s", name, err, path)
		}
	}
}

// SharedOverrides against a real agent: what one proxy puts, every watcher
// of the prefix gets (and nothing of another prefix or of keys it did not
// write), deletes clear it, and a watch started later reads what is in
// force.
func TestSharedOverridesThroughConsul(t *testing.T) {
	agent := consultest.Start(t)
	one := NewSharedOverrides(agent.Client(), "region-x/overrides", "", nil)
	two := NewSharedOverrides(agent.Client(), "region-x/overrides/", "", nil)
	other := NewSharedOverrides(agent.Client(), "region-y/overrides/", "", nil)
	if one.Prefix() != "region-x/overrides/" {
		t.Fatalf("prefix %q, want a trailing /", one.Prefix())
	}

	var mu sync.Mutex
	var seen []Overrides
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = two.Watch(ctx, func(o Overrides) {
			mu.Lock()
			seen = append(seen, o)
			mu.Unlock()
		})
	}()
	t.Cleanup(func() { cancel(); <-done })
	latest := func() Overrides {
		mu.Lock()
		defer mu.Unlock()
		if len(seen) == 0 {
			return nil
		}
		return seen[len(seen)-1]
	}
	testwait.Until(t, 5*time.Second, "the watch's first answer", func() bool { return latest() != nil })
	if o := latest(); len(o) != 0 {
		t.Fatalf("first answer %v, want none in force", o)
	}

	// Keys it does not own are left alone, but their change is an answer,
	// and every answer goes to apply, unchanged ones too: the caller may
	// have applied an override since that the answer must undo.
	calls := func() int { mu.Lock(); defer mu.Unlock(); return len(seen) }
	before := calls()
	if _, err := agent.Client().KV().Put(&api.KVPair{Key: "region-x/overrides/notes/why", Value: []byte("x")}, nil); err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, 5*time.Second, "the unchanged answer to reach apply", func() bool { return calls() > before })
	if o := latest(); len(o) != 0 {
		t.Fatalf("a key of another shape became an override: %v", o)
	}
	zone := OverrideKey{Kind: ZoneDrain, Pool: "web", Name: "a"}
	backend := OverrideKey{Kind: BackendDrain, Pool: "web", Name: "127.0.1.5:8080"}
	mark := Mark{At: time.Now().UTC().Truncate(time.Second), By: "alice", Proxy: "p1"}
	ctx5, cancel5 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel5()
	start := time.Now()
	for _, k := range []OverrideKey{zone, backend, {Kind: Evacuation}} {
		if err := one.Put(ctx5, k, mark); err != nil {
			t.Fatal(err)
		}
	}
	if err := other.Put(ctx5, OverrideKey{Kind: Evacuation}, mark); err != nil {
		t.Fatal(err)
	}
	want := Overrides{zone: mark, backend: mark, {Kind: Evacuation}: mark}
	testwait.Until(t, 5*time.Second, "the watch to see the puts", func() bool { return reflect.DeepEqual(latest(), want) })
	t.Logf("three overrides seen by the other watcher %v after the first put", time.Since(start))

	if err := one.Delete(ctx5, zone); err != nil {
		t.Fatal(err)
	}
	delete(want, zone)
	testwait.Until(t, 5*time.Second, "the watch to see the delete", func() bool { return reflect.DeepEqual(latest(), want) })

	got, err := NewSharedOverrides(agent.Client(), "region-x/overrides", "", nil).Read(ctx5)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("a later read = %v, %v; want %v", got, err, want)
	}
	raw, _, err := agent.Client().KV().Get("region-x/overrides/pools/web/backends/127.0.1.5:8080", nil)
	if err != nil || raw == nil || !strings.Contains(string(raw.Value), `"by":"alice"`) {
		t.Errorf("the backend's key holds %v (%v), want its mark", raw, err)
	}
}

// While the agent is away the watch calls nothing, so what was applied
// stays; when it is back the watch catches up.
func TestSharedOverridesOutage(t *testing.T) {
	agent := consultest.Start(t)
	s := NewSharedOverrides(agent.Client(), "", "", nil)
	if s.Prefix() != DefaultOverridePrefix {
		t.Fatalf("prefix %q, want the default", s.Prefix())
	}
	var mu sync.Mutex
	calls := []Overrides{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Watch(ctx, func(o Overrides) { mu.Lock(); calls = append(calls, o); mu.Unlock() })
	}()
	t.Cleanup(func() { cancel(); <-done })
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(calls) }
	testwait.Until(t, 5*time.Second, "the first answer", func() bool { return count() == 1 })

	agent.Stop()
	ctx1, cancel1 := context.WithTimeout(context.Background(), time.Second)
	defer cancel1()
	if err := s.Put(ctx1, OverrideKey{Kind: Evacuation}, Mark{By: "x"}); err == nil {
		t.Fatal("a put with the agent stopped succeeded")
	}
	time.Sleep(1500 * time.Millisecond) // several retries of the watch, none may call apply
	if n := count(); n != 1 {
		t.Fatalf("apply called %d times, want once: an outage must not look like an empty set", n)
	}
	agent.Restart()
	ctx5, cancel5 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel5()
	if err := s.Put(ctx5, OverrideKey{Kind: Evacuation}, Mark{By: "x"}); err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, 10*time.Second, "the watch to catch up", func() bool {
		mu.Lock()
		defer mu.Unlock()
		_, ok := calls[len(calls)-1][OverrideKey{Kind: Evacuation}]
		return ok
	})
}
