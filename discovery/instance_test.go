package discovery

import (
	"testing"

	"github.com/hashicorp/consul/api"

	"github.com/azimuthproxy/azimuth/balancer"
)

// entry builds a health entry for tables.
type entry struct {
	nodeAddr, svcAddr string
	port              int
	nodeMeta, svcMeta map[string]string
	tags              []string
	weights           api.AgentWeights
	statuses          []string
}

func (e entry) build() *api.ServiceEntry {
	se := &api.ServiceEntry{
		Node: &api.Node{Node: "n", Address: e.nodeAddr, Meta: e.nodeMeta},
		Service: &api.AgentService{
			ID: "svc", Service: "svc", Address: e.svcAddr, Port: e.port,
			Meta: e.svcMeta, Tags: e.tags, Weights: e.weights,
		},
	}
	for i, s := range e.statuses {
		se.Checks = append(se.Checks, &api.HealthCheck{CheckID: "check" + string(rune('a'+i)), Status: s})
	}
	return se
}

func TestInstanceAddress(t *testing.T) {
	tests := []struct {
		name   string
		e      entry
		want   string
		wantOK bool
	}{
		{"service address wins", entry{nodeAddr: "127.0.0.1", svcAddr: "127.0.1.5", port: 8080}, "127.0.1.5:8080", true},
		{"node address when service has none", entry{nodeAddr: "127.0.2.7", port: 9000}, "127.0.2.7:9000", true},
		{"ipv6 is bracketed", entry{svcAddr: "::1", port: 443}, "[::1]:443", true},
		{"hostname", entry{svcAddr: "backend.local", port: 80}, "backend.local:80", true},
		{"no port", entry{svcAddr: "127.0.0.1"}, "", false},
		{"port out of range", entry{svcAddr: "127.0.0.1", port: 70000}, "", false},
		{"no address anywhere", entry{port: 80}, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := instanceAddress(tt.e.build())
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("instanceAddress = %q, %v; want %q, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestInstanceZone(t *testing.T) {
	opts := PoolOptions{Service: "svc", ZoneMeta: "az", ZoneTagPrefix: "az="}
	tests := []struct {
		name string
		e    entry
		opts PoolOptions
		want string
	}{
		{"service meta wins over node meta and tag", entry{svcMeta: map[string]string{"az": "a"}, nodeMeta: map[string]string{"az": "b"}, tags: []string{"az=c"}}, opts, "a"},
		{"node meta wins over tag", entry{nodeMeta: map[string]string{"az": "b"}, tags: []string{"az=c"}}, opts, "b"},
		{"empty service meta falls through", entry{svcMeta: map[string]string{"az": ""}, nodeMeta: map[string]string{"az": "b"}}, opts, "b"},
		{"tag", entry{tags: []string{"web", "az=c"}}, opts, "c"},
		{"first zone tag wins", entry{tags: []string{"az=c", "az=d"}}, opts, "c"},
		{"bare prefix tag is no zone", entry{tags: []string{"az="}}, opts, ""},
		{"other meta key is ignored", entry{svcMeta: map[string]string{"zone": "a"}}, opts, ""},
		{"no zone", entry{}, opts, ""},
		{"meta ignored without key", entry{svcMeta: map[string]string{"az": "a"}, tags: []string{"az=c"}}, PoolOptions{ZoneTagPrefix: "az="}, "c"},
		{"tag ignored without prefix", entry{tags: []string{"az=c"}}, PoolOptions{ZoneMeta: "az"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := instanceZone(tt.e.build(), tt.opts); got != tt.want {
				t.Errorf("instanceZone = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestInstanceWeight(t *testing.T) {
	opts := PoolOptions{Service: "svc", WeightMeta: "weight"}
	tests := []struct {
		name    string
		e       entry
		status  string
		opts    PoolOptions
		want    int
		wantBad bool
	}{
		{"meta wins", entry{svcMeta: map[string]string{"weight": "7"}, weights: api.AgentWeights{Passing: 3, Warning: 1}}, api.HealthPassing, opts, 7, false},
		{"meta with spaces", entry{svcMeta: map[string]string{"weight": " 4 "}}, api.HealthPassing, opts, 4, false},
		{"passing weight", entry{weights: api.AgentWeights{Passing: 3, Warning: 1}}, api.HealthPassing, opts, 3, false},
		{"warning weight for warning instance", entry{weights: api.AgentWeights{Passing: 3, Warning: 2}}, api.HealthWarning, opts, 2, false},
		{"zero weights give one", entry{}, api.HealthPassing, opts, 1, false},
		{"zero warning weight gives one", entry{weights: api.AgentWeights{Passing: 3}}, api.HealthWarning, opts, 1, false},
		{"bad meta falls back and is flagged", entry{svcMeta: map[string]string{"weight": "heavy"}, weights: api.AgentWeights{Passing: 5}}, api.HealthPassing, opts, 5, true},
		{"zero meta falls back and is flagged", entry{svcMeta: map[string]string{"weight": "0"}}, api.HealthPassing, opts, 1, true},
		{"negative meta falls back and is flagged", entry{svcMeta: map[string]string{"weight": "-2"}}, api.HealthPassing, opts, 1, true},
		{"meta ignored without key", entry{svcMeta: map[string]string{"weight": "9"}, weights: api.AgentWeights{Passing: 2}}, api.HealthPassing, PoolOptions{}, 2, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, bad := instanceWeight(tt.e.build(), tt.status, tt.opts)
			if got != tt.want || bad != tt.wantBad {
				t.Errorf("instanceWeight = %d, %v; want %d, %v", got, bad, tt.want, tt.wantBad)
			}
		})
	}
}

func TestInstanceSpecAdmission(t *testing.T) {
	base := entry{svcAddr: "127.0.1.1", port: 80, svcMeta: map[string]string{"az": "a"}}
	with := func(statuses ...string) entry { e := base; e.statuses = statuses; return e }
	maint := with(api.HealthPassing).build()
	maint.Checks = append(maint.Checks, &api.HealthCheck{CheckID: api.ServiceMaintPrefix + "svc", Status: api.HealthCritical})
	tests := []struct {
		name           string
		e              *api.ServiceEntry
		includeWarning bool
		wantOK         bool
	}{
		{"no checks is passing", with().build(), false, true},
		{"passing", with(api.HealthPassing, api.HealthPassing).build(), false, true},
		{"warning excluded by default", with(api.HealthPassing, api.HealthWarning).build(), false, false},
		{"warning admitted on opt-in", with(api.HealthPassing, api.HealthWarning).build(), true, true},
		{"critical never", with(api.HealthWarning, api.HealthCritical).build(), true, false},
		{"maintenance never", maint, true, false},
		{"unknown status never", with("bogus").build(), true, false},
		{"no service", &api.ServiceEntry{}, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec, _, reason := instanceSpec(tt.e, PoolOptions{Service: "svc", ZoneMeta: "az", IncludeWarning: tt.includeWarning})
			if ok := reason == ""; ok != tt.wantOK {
				t.Fatalf("instanceSpec admitted = %v (reason %q), want %v", ok, reason, tt.wantOK)
			}
			if tt.wantOK && spec != (balancer.Spec{Address: "127.0.1.1:80", Zone: "a", Weight: 1}) {
				t.Errorf("instanceSpec = %+v", spec)
			}
		})
	}
}

func TestBuildSnapshot(t *testing.T) {
	opts := PoolOptions{Service: "svc", ZoneMeta: "az", WeightMeta: "w"}
	entries := []*api.ServiceEntry{
		entry{svcAddr: "127.0.3.1", port: 80, svcMeta: map[string]string{"az": "c"}}.build(),
		entry{svcAddr: "127.0.1.1", port: 80, svcMeta: map[string]string{"az": "a", "w": "x"}}.build(),
		entry{svcAddr: "127.0.2.1", port: 80}.build(),
		// The same backend registered twice: the zone sorting first wins.
		entry{svcAddr: "127.0.3.1", port: 80, svcMeta: map[string]string{"az": "b"}}.build(),
		entry{svcAddr: "127.0.4.1", port: 80, statuses: []string{api.HealthCritical}}.build(),
		entry{svcAddr: "127.0.5.1"}.build(),
	}
	got := buildSnapshot(entries, opts)
	want := []balancer.Spec{
		{Address: "127.0.1.1:80", Zone: "a", Weight: 1},
		{Address: "127.0.2.1:80", Zone: "", Weight: 1},
		{Address: "127.0.3.1:80", Zone: "b", Weight: 1},
	}
	if len(got.specs) != len(want) {
		t.Fatalf("specs = %v, want %v", got.specs, want)
	}
	for i := range want {
		if got.specs[i] != want[i] {
			t.Errorf("specs[%d] = %+v, want %+v", i, got.specs[i], want[i])
		}
	}
	if len(got.noZone) != 1 || got.noZone[0] != "127.0.2.1:80" {
		t.Errorf("noZone = %v, want [127.0.2.1:80]", got.noZone)
	}
	if len(got.badWeight) != 1 || got.badWeight[0] != "127.0.1.1:80" {
		t.Errorf("badWeight = %v, want [127.0.1.1:80]", got.badWeight)
	}
	if got.skipped != 2 {
		t.Errorf("skipped = %d, want 2", got.skipped)
	}
	if empty := buildSnapshot(nil, opts); empty.specs == nil || len(empty.specs) != 0 {
		t.Errorf("empty answer gives %#v, want a non-nil empty set", empty.specs)
	}
}
