package loadtest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

func TestMixSchedule(t *testing.T) {
	tests := []struct {
		name    string
		weights []int
		want    string // one cycle, entry indexes
	}{
		{"one entry", []int{5}, "0"},
		{"90/10 reduced to 9:1, the POST mid-cycle", []int{90, 10}, "0000010000"},
		{"even split alternates", []int{1, 1}, "01"},
		{"smooth, not bunched", []int{5, 1, 1}, "0010200"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var mix []MixEntry
			for i, w := range tc.weights {
				mix = append(mix, MixEntry{Method: []string{"GET", "POST", "PUT"}[i], Weight: w})
			}
			p := newMixPlan(mix)
			var got strings.Builder
			for _, e := range p.schedule {
				got.WriteByte('0' + e)
			}
			if got.String() != tc.want {
				t.Errorf("schedule %s, want %s", got.String(), tc.want)
			}
			// Request n's entry depends on n alone, cycle after cycle.
			for n := int64(1); n <= int64(3*len(p.schedule)); n++ {
				if p.entry(n) != int(tc.want[(n-1)%int64(len(tc.want))]-'0') {
					t.Fatalf("entry(%d) = %d, off the schedule", n, p.entry(n))
				}
			}
		})
	}
}

func TestMixValidation(t *testing.T) {
	tests := []struct {
		name string
		mix  []MixEntry
		want string
	}{
		{"zero weight", []MixEntry{{Method: "GET", Weight: 0}}, "weight 0, want at least 1"},
		{"no method", []MixEntry{{Weight: 1}}, "is not an HTTP method"},
		{"cycle too long", []MixEntry{{Method: "GET", Weight: 9999}, {Method: "POST", Weight: 7}}, "one cycle is over"},
		{"too many entries", make([]MixEntry, 17), "want at most 16"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Options{URL: "http://127.0.0.1/", Mix: tc.mix}.withDefaults()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
	o, err := Options{URL: "http://127.0.0.1/", Mix: []MixEntry{{Method: "GET", Weight: 9}, {Method: "POST", Weight: 1}}}.withDefaults()
	if err != nil || o.IDHeader != DefaultIDHeader || string(o.Mix[1].Body) != string(DefaultMixBody) || o.Mix[0].Body != nil {
		t.Errorf("mix defaults: %v %+v; want X-Load-Id, the default POST body, no GET body", err, o)
	}
	if len(DefaultMixBody) != 64 {
		t.Errorf("default body is %d bytes, want 64", len(DefaultMixBody))
	}
}

// mixServer records every request's method, body size and ID, and
// answers DELETE with a redirect.
type mixServer struct {
	mu      sync.Mutex
	methods map[string]int
	bodies  map[string]int // method -> body bytes of the last request
	ids     map[string]int
}

func (m *mixServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	m.mu.Lock()
	m.methods[r.Method]++
	m.bodies[r.Method] = len(b)
	m.ids[r.Header.Get(DefaultIDHeader)]++
	m.mu.Unlock()
	if r.Method == http.MethodDelete {
		w.Header().Set("Location", "/")
		w.WriteHeader(http.StatusFound)
	}
}

// TestMixRun sends a mix through the h1 client and through net/http's
// h2c: the server sees the methods in exactly the weights' proportion,
// each request with its own ID and its entry's body, and the result keeps
// each method apart, a 3xx counting as success overall but not per method.
func TestMixRun(t *testing.T) {
	for _, proto := range []Protocol{H1, H2} {
		t.Run(string(proto), func(t *testing.T) {
			ms := &mixServer{methods: map[string]int{}, bodies: map[string]int{}, ids: map[string]int{}}
			srv := httptest.NewUnstartedServer(ms)
			srv.Config.Protocols = new(http.Protocols)
			srv.Config.Protocols.SetHTTP1(true)
			srv.Config.Protocols.SetUnencryptedHTTP2(true)
			srv.Start()
			defer srv.Close()
			res := mustRun(t, Options{URL: srv.URL, Protocol: proto, Concurrency: 8, Requests: 1000, Mix: []MixEntry{
				{Method: "GET", Weight: 80}, {Method: "POST", Weight: 10}, {Method: "DELETE", Weight: 5}, {Method: "PUT", Weight: 5, Body: []byte("abc")},
			}})
			ms.mu.Lock()
			defer ms.mu.Unlock()
			want := map[string]int{"GET": 800, "POST": 100, "DELETE": 50, "PUT": 50}
			for m, n := range want {
				if ms.methods[m] != n {
					t.Errorf("server saw %d %s, want %d (all: %v)", ms.methods[m], m, n, ms.methods)
				}
				if got := res.Methods[m]; got == nil || got.Requests != int64(n) {
					t.Errorf("result for %s: %+v, want %d requests", m, got, n)
				}
			}
			if len(ms.ids) != 1000 || ms.ids[""] != 0 {
				t.Errorf("%d distinct IDs, want 1000, each present", len(ms.ids))
			}
			if ms.bodies["POST"] != 64 || ms.bodies["PUT"] != 3 || ms.bodies["GET"] != 0 {
				t.Errorf("body sizes %v, want POST 64 (the default), PUT 3, GET none", ms.bodies)
			}
			if res.Succeeded != 1000 || res.Methods["DELETE"].Succeeded != 0 || res.Methods["GET"].Succeeded != 800 {
				t.Errorf("succeeded %d overall, DELETE %d, GET %d; want 1000, 0 (a 302 is no 2xx), 800",
					res.Succeeded, res.Methods["DELETE"].Succeeded, res.Methods["GET"].Succeeded)
			}
			if sent, ok, lat := res.MethodWindow("POST", 0, len(res.Timeline)); sent != 100 || ok != 100 || lat.Count != 100 {
				t.Errorf("POST window: %d sent, %d ok, %d latencies; want 100 each", sent, ok, lat.Count)
			}
			if !strings.HasPrefix(res.Method, "mix(GET:80,") {
				t.Errorf("result method %q, want the mix's label", res.Method)
			}
		})
	}
}

// TestSingleMethodResult checks that a run without a mix reports its one
// method under Methods too, with 2xx as success.
func TestSingleMethodResult(t *testing.T) {
	srv := httptest.NewServer(&counting{})
	defer srv.Close()
	res := mustRun(t, Options{URL: srv.URL, Concurrency: 2, Requests: 20})
	if m := res.Methods["GET"]; m == nil || m.Requests != 20 || m.Succeeded != 20 || len(res.Methods) != 1 {
		t.Errorf("methods %+v, want GET 20/20 only", res.Methods)
	}
}
