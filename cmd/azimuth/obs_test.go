package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/instance"
	"github.com/azimuthproxy/azimuth/internal/testwait"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// obsServer is a backend on a loopback address standing for a zone.
type obsServer struct {
	addr string
	srv  *http.Server
}

// obsBackend serves h on ip with a free port until the test ends or close.
func obsBackend(t *testing.T, ip string, h http.Handler) *obsServer {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatalf("listening on %s (zones are loopback addresses 127.0.x.1): %v", ip, err)
	}
	s := &obsServer{addr: ln.Addr().String(), srv: &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}}
	go func() { _ = s.srv.Serve(ln) }()
	t.Cleanup(s.close)
	return s
}

// close stops accepting and cuts open connections, as a crashed backend.
func (s *obsServer) close() { _ = s.srv.Close() }

// obsNamed answers every request with name, and 200 to health checks.
func obsNamed(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, name)
	})
}

// obsHung accepts requests and never answers them until the client gives up.
func obsHung(t *testing.T) http.Handler {
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	return http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	})
}

// obsConfig is a test config with admin and listener on free ports; body
// is appended (pools and anything else).
func obsConfig(t *testing.T, dir, body string) string {
	t.Helper()
	cfg := "zone: a\nadmin: { address: 127.0.0.1:0 }\nshutdown: { grace: 2s, drain_delay: 1s }\n" +
		"listeners:\n  - name: http\n    address: 127.0.0.1:0\n    routes: [{ pool: web }]\n" + body
	path := filepath.Join(dir, "azimuth.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// obsStart runs azimuth on config and returns it with its admin address.
func obsStart(t *testing.T, config string) (*process, string) {
	t.Helper()
	p := start(t, config)
	return p, p.waitLog(t, "admin listening", nil)["address"].(string)
}

// obsDo sends one request with an optional bearer token and returns the
// status and body.
func obsDo(t *testing.T, method, url, token string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	return resp.StatusCode, body
}

// obsStatus is the part of /status the tests read.
type obsStatus struct {
	Zone      string `json:"zone"`
	Draining  bool   `json:"draining"`
	Evacuated bool   `json:"evacuated"`
	Readiness struct {
		Ready   bool     `json:"ready"`
		Reasons []string `json:"reasons"`
	} `json:"readiness"`
	Config struct {
		Hash         string    `json:"hash"`
		LoadedAt     time.Time `json:"loaded_at"`
		LastReloadOK bool      `json:"last_reload_ok"`
	} `json:"config"`
	Pools []struct {
		Name   string `json:"name"`
		Counts struct {
			Requests float64 `json:"requests_total"`
			Errors   float64 `json:"errors_total"`
			Retries  float64 `json:"retries_total"`
		} `json:"counts"`
		Panic    bool                  `json:"panic"`
		PerTry   instance.PerTry       `json:"per_try"`
		Zones    []instance.ZoneStatus `json:"zones"`
		Backends []struct {
			Address   string `json:"address"`
			Zone      string `json:"zone"`
			State     string `json:"state"`
			Drained   bool   `json:"drained"`
			InFlight  int64  `json:"in_flight"`
			Weight    int    `json:"weight"`
			Available bool   `json:"available"`
			LastError string `json:"last_error"`
		} `json:"backends"`
	} `json:"pools"`
	Listeners []struct {
		Name    string `json:"name"`
		Address string `json:"address"`
		TLS     bool   `json:"tls"`
	} `json:"listeners"`
}

func obsGetStatus(t *testing.T, admin, token string) obsStatus {
	t.Helper()
	code, body := obsDo(t, "GET", "http://"+admin+"/status", token)
	if code != http.StatusOK {
		t.Fatalf("/status = %d %s", code, body)
	}
	var st obsStatus
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatalf("/status is not JSON: %v\n%s", err, body)
	}
	return st
}

// obsListener returns the bound address of the listener named name.
func obsListener(t *testing.T, admin, token, name string) string {
	t.Helper()
	for _, l := range obsGetStatus(t, admin, token).Listeners {
		if l.Name == name {
			return l.Address
		}
	}
	t.Fatalf("no listener %q in /status", name)
	return ""
}

// obsScrape reads /metrics in the Prometheus text format.
func obsScrape(t *testing.T, admin, token string) map[string]*dto.MetricFamily {
	t.Helper()
	code, body := obsDo(t, "GET", "http://"+admin+"/metrics", token)
	if code != http.StatusOK {
		t.Fatalf("/metrics = %d %s", code, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parsing /metrics: %v\n%s", err, body)
	}
	return fams
}

// obsSeries returns the series of family name whose labels include want.
func obsSeries(fams map[string]*dto.MetricFamily, name string, want map[string]string) []*dto.Metric {
	var out []*dto.Metric
	f := fams[name]
	if f == nil {
		return nil
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		out = append(out, m)
	}
	return out
}

// obsValue is the value of the one series of name matching want; the test
// fails if there is not exactly one.
func obsValue(t *testing.T, fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	t.Helper()
	ms := obsSeries(fams, name, want)
	if len(ms) != 1 {
		t.Fatalf("%s%v: %d series, want 1; family: %v", name, want, len(ms), fams[name])
	}
	m := ms[0]
	switch {
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	case m.Histogram != nil:
		return float64(m.GetHistogram().GetSampleCount())
	}
	return m.GetUntyped().GetValue()
}

// obsReadLines returns the JSON lines of an access log file.
func obsReadLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("access log line is not JSON: %v: %s", err, sc.Text())
		}
		out = append(out, m)
	}
	return out
}

// obsProxyGet sends n GETs through the proxy and returns the bodies.
func obsProxyGet(t *testing.T, addr string, n int) []string {
	t.Helper()
	var bodies []string
	for i := range n {
		code, body := obsDo(t, "GET", fmt.Sprintf("http://%s/item/%d", addr, i), "")
		if code != http.StatusOK {
			t.Fatalf("GET %d through the proxy = %d %s", i, code, body)
		}
		bodies = append(bodies, string(body))
	}
	return bodies
}

// TestObsMetricsAfterHungZone plays ten GETs while zone a's only backend
// hangs: each first attempt times out in zone a and is retried in zone b.
// The metrics, /status counters and the access log must all say exactly
// that; a backend removed by reload must leave /metrics.
func TestObsMetricsAfterHungZone(t *testing.T) {
	dir := t.TempDir()
	hung := obsBackend(t, "127.0.1.1", obsHung(t))
	okB := obsBackend(t, "127.0.2.1", obsNamed("b"))
	okC := obsBackend(t, "127.0.3.1", obsNamed("c"))
	access := filepath.Join(dir, "access.log")
	pools := func(second string) string {
		return fmt.Sprintf("log: { access_log: { output: %s } }\npools:\n  - name: web\n"+
			"    timeouts: { connect: 100ms, per_try: 150ms, request: 5s }\n"+
			"    health: { passive: { consecutive_failures: 0 } }\n"+
			"    backends:\n      - { address: %s, zone: a }\n      - { address: %s }\n", access, hung.addr, second)
	}
	config := obsConfig(t, dir, pools(fmt.Sprintf("%s, zone: b", okB.addr)))
	p, admin := obsStart(t, config)
	addr := obsListener(t, admin, "", "http")

	for i, body := range obsProxyGet(t, addr, 10) {
		if body != "b" {
			t.Fatalf("request %d answered by %q, want zone b's backend", i, body)
		}
	}

	// A request is counted when its handler returns, which is just after
	// the client has the whole response: scrape until the last one landed.
	var fams map[string]*dto.MetricFamily
	testwait.Until(t, 10*time.Second, "the 10th request to be counted", func() bool {
		fams = obsScrape(t, admin, "")
		return obsValue(t, fams, "azimuth_requests_total", map[string]string{"listener": "http", "pool": "web", "code": "200"}) == 10 &&
			obsValue(t, fams, "azimuth_backend_in_flight", map[string]string{"pool": "web", "backend": okB.addr, "zone": "b"}) == 0
	})
	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"azimuth_requests_total", map[string]string{"listener": "http", "pool": "web", "code": "200"}, 10},
		{"azimuth_request_duration_seconds", map[string]string{"pool": "web"}, 10},
		{"azimuth_attempts_total", map[string]string{"pool": "web", "zone": "a", "result": "timeout"}, 10},
		{"azimuth_attempts_total", map[string]string{"pool": "web", "zone": "b", "result": "ok"}, 10},
		{"azimuth_retries_total", map[string]string{"pool": "web", "from_zone": "a", "to_zone": "b", "cause": "timeout"}, 10},
		{"azimuth_hedges_total", map[string]string{"pool": "web", "result": "won"}, 10},
		{"azimuth_backend_up", map[string]string{"pool": "web", "backend": hung.addr, "zone": "a"}, 1},
		{"azimuth_backend_up", map[string]string{"pool": "web", "backend": okB.addr, "zone": "b"}, 1},
		{"azimuth_backend_in_flight", map[string]string{"pool": "web", "backend": okB.addr, "zone": "b"}, 0},
		{"azimuth_zone_healthy_ratio", map[string]string{"pool": "web", "zone": "a"}, 1},
		{"azimuth_pool_spill_ratio", map[string]string{"pool": "web"}, 0},
		{"azimuth_pool_panic", map[string]string{"pool": "web"}, 0},
		{"azimuth_config_last_reload_successful", nil, 1},
		{"azimuth_config_reloads_total", map[string]string{"result": "success"}, 1},
	}
	for _, c := range checks {
		t.Run(fmt.Sprintf("%s%v", c.name, c.labels), func(t *testing.T) {
			if got := obsValue(t, fams, c.name, c.labels); got != c.want {
				t.Errorf("= %v, want %v", got, c.want)
			}
		})
	}
	if n := len(obsSeries(fams, "azimuth_attempts_total", map[string]string{"pool": "web"})); n != 2 {
		t.Errorf("%d attempt series, want 2 (a timeout, b ok): %v", n, fams["azimuth_attempts_total"])
	}
	for _, name := range []string{"go_goroutines", "process_cpu_seconds_total"} {
		if fams[name] == nil {
			t.Errorf("/metrics lacks %s", name)
		}
	}

	st := obsGetStatus(t, admin, "")
	if c := st.Pools[0].Counts; c.Requests != 10 || c.Retries != 10 || c.Errors != 0 {
		t.Errorf("/status counts = %+v, want 10 requests, 10 retries, 0 errors", c)
	}

	// The access log: one line per request with both attempts.
	var lines []map[string]any
	testwait.Until(t, 10*time.Second, "10 access log lines", func() bool { lines = obsReadLines(t, access); return len(lines) >= 10 })
	if len(lines) != 10 {
		t.Fatalf("%d access log lines, want 10", len(lines))
	}
	for i, l := range lines {
		for k, want := range map[string]any{"msg": "request", "method": "GET", "path": fmt.Sprintf("/item/%d", i),
			"status": float64(200), "bytes": float64(1), "pool": "web", "proto": "h1", "tls": "", "listener": "http", "host": addr, "tries": float64(2)} {
			if l[k] != want {
				t.Errorf("line %d: %s = %v, want %v", i, k, l[k], want)
			}
		}
		for _, k := range []string{"time", "request_id", "client", "duration_ms"} {
			if l[k] == nil || l[k] == "" {
				t.Errorf("line %d lacks %s: %v", i, k, l)
			}
		}
		at, _ := l["attempts"].([]any)
		if len(at) != 2 {
			t.Fatalf("line %d: attempts %v, want 2", i, l["attempts"])
		}
		first, second := at[0].(map[string]any), at[1].(map[string]any)
		if first["backend"] != hung.addr || first["zone"] != "a" || first["result"] != "timeout" || first["duration_ms"].(float64) < 100 {
			t.Errorf("line %d: first attempt %v, want a timeout of about 150ms in zone a", i, first)
		}
		if second["backend"] != okB.addr || second["zone"] != "b" || second["result"] != "ok" || second["status"] != float64(200) {
			t.Errorf("line %d: second attempt %v, want ok in zone b", i, second)
		}
	}

	// Replace b by c: b's series go, c's come.
	if err := os.WriteFile(config, []byte(strings.Replace(mustRead(t, config), okB.addr+", zone: b", okC.addr+", zone: c", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	p.waitLog(t, "config reloaded", nil)
	fams = obsScrape(t, admin, "")
	for _, name := range []string{"azimuth_backend_up", "azimuth_backend_in_flight"} {
		if s := obsSeries(fams, name, map[string]string{"backend": okB.addr}); len(s) != 0 {
			t.Errorf("%s still has the removed backend %s: %v", name, okB.addr, s)
		}
		if v := obsValue(t, fams, name, map[string]string{"pool": "web", "backend": okC.addr, "zone": "c"}); name == "azimuth_backend_up" && v != 1 {
			t.Errorf("%s of the new backend = %v, want 1", name, v)
		}
	}
	if s := obsSeries(fams, "azimuth_zone_healthy_ratio", map[string]string{"zone": "b"}); len(s) != 0 {
		t.Errorf("zone b left the pool but keeps a healthy ratio series: %v", s)
	}
	if got := obsValue(t, fams, "azimuth_config_reloads_total", map[string]string{"result": "success"}); got != 2 {
		t.Errorf("reloads_total{success} = %v, want 2", got)
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
