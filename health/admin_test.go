package health

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/azimuthproxy/azimuth/balancer"
)

func TestAdminHandler(t *testing.T) {
	reg := balancer.NewRegistry()
	p := reg.Pool("web", balancer.Options{LocalZone: "a"})
	p.Update([]balancer.Spec{
		{Address: "127.0.1.1:8080", Zone: "a"}, {Address: "127.0.1.2:8080", Zone: "a"},
		{Address: "127.0.2.1:8080", Zone: "b"},
	})
	logs := &logBuffer{}
	srv := httptest.NewServer(AdminHandler(reg, slog.New(slog.NewJSONHandler(logs, nil)), nil))
	defer srv.Close()

	// A request picked before the drains stays in flight through them.
	var inFlight *balancer.Backend
	var held balancer.Lease
	for inFlight == nil {
		lease, err := p.Pick(context.Background(), nil)
		b := lease.Backend()
		if err != nil {
			t.Fatal(err)
		}
		if b.Address() == "127.0.1.1:8080" {
			inFlight, held = b, lease
		} else {
			lease.Release()
		}
	}

	type answer map[string]any
	cases := []struct {
		name   string
		method string
		path   string
		code   int
		want   answer // fields the JSON answer must carry
		check  func(t *testing.T)
	}{
		{"drain a zone", "POST", "/pools/web/zones/a/drain", 200,
			answer{"pool": "web", "zone": "a", "drained": true, "changed": true, "backends": 2.0},
			func(t *testing.T) {
				if !p.ZoneDrained("a") || !p.Backend("127.0.1.2:8080").Drained() {
					t.Error("zone a not drained")
				}
				for range 20 {
					lease, err := p.Pick(context.Background(), nil)
					b := lease.Backend()
					if err != nil {
						t.Fatal(err)
					}
					if b.Zone() != "b" {
						t.Fatalf("picked %s in a drained zone", b.Address())
					}
					lease.Release()
				}
			}},
		{"drain it again changes nothing", "POST", "/pools/web/zones/a/drain", 200,
			answer{"drained": true, "changed": false}, nil},
		{"enable the zone", "POST", "/pools/web/zones/a/enable", 200,
			answer{"zone": "a", "drained": false, "changed": true},
			func(t *testing.T) {
				if p.ZoneDrained("a") || p.Backend("127.0.1.2:8080").Drained() {
					t.Error("zone a still drained")
				}
			}},
		{"drain a backend", "POST", "/pools/web/backends/127.0.1.1:8080/drain", 200,
			answer{"pool": "web", "backend": "127.0.1.1:8080", "zone": "a", "state": "up", "drained": true, "changed": true},
			func(t *testing.T) {
				b := p.Backend("127.0.1.1:8080")
				if b.Available() {
					t.Error("drained backend still available")
				}
				for range 20 {
					gotLease, err := p.Pick(context.Background(), nil)
					got := gotLease.Backend()
					if err != nil {
						t.Fatal(err)
					}
					if got == b {
						t.Fatal("drained backend picked")
					}
					gotLease.Release()
				}
			}},
		{"enable the backend", "POST", "/pools/web/backends/127.0.1.1:8080/enable", 200,
			answer{"backend": "127.0.1.1:8080", "drained": false, "changed": true},
			func(t *testing.T) {
				if !p.Backend("127.0.1.1:8080").Available() {
					t.Error("enabled backend not available")
				}
			}},
		{"GET is not allowed", "GET", "/pools/web/zones/a/drain", 405, answer{}, nil},
		{"PUT is not allowed", "PUT", "/pools/web/backends/127.0.1.1:8080/enable", 405, answer{}, nil},
		{"unknown pool", "POST", "/pools/api/zones/a/drain", 404, answer{}, nil},
		{"unknown zone", "POST", "/pools/web/zones/c/drain", 404, answer{}, nil},
		{"unknown backend", "POST", "/pools/web/backends/127.0.9.9:1/drain", 404, answer{}, nil},
		{"unknown action", "POST", "/pools/web/zones/a/explode", 404, answer{}, nil},
		{"unknown path", "POST", "/pools/web", 404, answer{}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, srv.URL+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tc.code {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.code)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("content type %q, want application/json", ct)
			}
			var got answer
			if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
				t.Fatalf("decoding answer: %v", err)
			}
			if tc.code != 200 {
				if msg, _ := got["error"].(string); msg == "" {
					t.Errorf("error answer %v has no error message", got)
				}
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("answer[%q] = %v, want %v (answer %v)", k, got[k], v, got)
				}
			}
			if tc.check != nil {
				tc.check(t)
			}
		})
	}
	// The request in flight through every override finishes normally.
	if n := inFlight.InFlight(); n != 1 {
		t.Errorf("backend has %d requests in flight, want the one picked before the drains", n)
	}
	held.Release()
	if n := inFlight.InFlight(); n != 0 {
		t.Errorf("backend has %d requests in flight after release", n)
	}
	if got := logs.count(`"operator override"`); got != 5 {
		t.Errorf("logged %d overrides, want one per successful POST (5)", got)
	}
	if got := logs.count(`"operator override"`, `"zone":"a"`, `"action":"drain"`); got != 3 {
		t.Errorf("logged %d drains in zone a, want 3 (two of the zone, one of a backend)", got)
	}
}

func TestAdminDrainedZoneWithoutBackendsCanBeEnabled(t *testing.T) {
	reg := balancer.NewRegistry()
	p := reg.Pool("web", balancer.Options{})
	p.Update(specs("a", "127.0.1.1:8080"))
	p.SetZoneDrained("a", true)
	p.Update(specs("b", "127.0.2.1:8080"))
	srv := httptest.NewServer(AdminHandler(reg, nil, nil))
	defer srv.Close()
	resp, err := srv.Client().Post(srv.URL+"/pools/web/zones/a/enable", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || p.ZoneDrained("a") {
		t.Errorf("enable of an empty drained zone: status %d, drained %v", resp.StatusCode, p.ZoneDrained("a"))
	}
}
