package scenario

import (
	"strings"
	"testing"
	"time"
)

func TestConfigYAML(t *testing.T) {
	backends := []Endpoint{{"127.0.1.1:4000", "a"}, {"127.0.2.1:4001", "b"}}
	tests := []struct {
		name string
		a    Azimuth
		pool string // the exact pools section
	}{
		{"defaults only: a name and backends", Azimuth{Zone: "a"}, `pools:
  - name: app
    backends:
      - { address: "127.0.1.1:4000", zone: "a" }
      - { address: "127.0.2.1:4001", zone: "b" }
`},
		{"one key writes its block alone", Azimuth{Zone: "a", PerTryTimeout: new("off")}, `pools:
  - name: app
    timeouts:
      per_try: "off"
    backends:
      - { address: "127.0.1.1:4000", zone: "a" }
      - { address: "127.0.2.1:4001", zone: "b" }
`},
		{"a health key writes the active block with the fleet's path", Azimuth{Zone: "a", Fall: new(0)}, `pools:
  - name: app
    health:
      active:
        path: "/healthz"
        fall: 0
    backends:
      - { address: "127.0.1.1:4000", zone: "a" }
      - { address: "127.0.2.1:4001", zone: "b" }
`},
		{"every key, zeros written", Azimuth{
			Zone: "a", ConnectTimeout: new(100 * time.Millisecond), PerTryTimeout: new("auto"), RequestTimeout: new(3 * time.Second),
			Attempts: new(3), RetryOn: []string{"connect_failure", "503"}, IdempotencyHeader: new("Idempotency-Key"),
			BudgetPercent: new(0), BudgetMinPerSecond: new(2.5), BudgetWindow: new(10 * time.Second),
			HealthPath: new("/ready"), HealthInterval: new(500 * time.Millisecond), HealthTimeout: new(200 * time.Millisecond),
			Rise: new(2), Fall: new(3), ConsecutiveFailures: new(0), Ejection: new(5 * time.Second), MaxEjectedPercent: new(50),
			SpillBelow: new(0.7), PanicBelow: new(0.0),
		}, `pools:
  - name: app
    timeouts:
      connect: "100ms"
      per_try: "auto"
      request: "3s"
    retry:
      attempts: 3
      on: ["connect_failure", "503"]
      idempotency_header: "Idempotency-Key"
      budget:
        percent: 0
        min_per_second: 2.5
        window: "10s"
    zones:
      spill_below: 0.7
      panic_below: 0
    health:
      active:
        path: "/ready"
        interval: "500ms"
        timeout: "200ms"
        rise: 2
        fall: 3
      passive:
        consecutive_failures: 0
        ejection: "5s"
        max_ejected_percent: 50
    backends:
      - { address: "127.0.1.1:4000", zone: "a" }
      - { address: "127.0.2.1:4001", zone: "b" }
`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ConfigYAML(tc.a, Listener{Address: "127.0.0.1:8080"}, "127.0.0.1:9901", "/tmp/x/access.log", backends)
			if got := PoolSection(cfg); got != tc.pool {
				t.Errorf("pool section:\n%s\nwant:\n%s", got, tc.pool)
			}
			for _, want := range []string{"zone: \"a\"\n", "admin:\n  address: \"127.0.0.1:9901\"", "    address: \"127.0.0.1:8080\"\n    routes:\n      - pool: app\n"} {
				if !strings.Contains(cfg, want) {
					t.Errorf("config lacks %q:\n%s", want, cfg)
				}
			}
			if tc.a.DefaultsOnly() != (tc.name == tests[0].name) {
				t.Errorf("DefaultsOnly() = %v", tc.a.DefaultsOnly())
			}
		})
	}
}

func TestConfigYAMLTLS(t *testing.T) {
	cfg := ConfigYAML(Default().Azimuth, Listener{Address: "127.0.0.1:8443", CertFile: "/w/cert.pem", KeyFile: "/w/key.pem", HTTP3: true},
		"127.0.0.1:9901", "off", []Endpoint{{"127.0.1.1:4000", "a"}})
	want := "    address: \"127.0.0.1:8443\"\n    tls:\n      certificates:\n        - cert_file: \"/w/cert.pem\"\n          key_file: \"/w/key.pem\"\n      http3: true\n    routes:\n"
	if !strings.Contains(cfg, want) {
		t.Errorf("config lacks the TLS listener:\n%s", cfg)
	}
}

func TestParseMetrics(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		retries *float64
		hedges  map[string]float64
		refused map[string]float64
	}{
		{"every series", `# HELP azimuth_retries_total Retries.
# TYPE azimuth_retries_total counter
azimuth_retries_total{cause="timeout",from_zone="a",pool="app",to_zone="b"} 7
azimuth_retries_total{cause="connect_failure",from_zone="a",pool="app",to_zone="c"} 2
# TYPE azimuth_hedges_total counter
azimuth_hedges_total{pool="app",result="won"} 3
azimuth_hedges_total{pool="app",result="lost"} 1
azimuth_hedges_total{pool="other",result="won"} 2
# TYPE azimuth_retries_refused_total counter
azimuth_retries_refused_total{pool="app",reason="budget"} 5
azimuth_retries_refused_total{pool="app",reason="not_replayable"} 9 1700000000000
azimuth_retries_total_other{cause="x"} 100
`, new(9.0), map[string]float64{"won": 5, "lost": 1}, map[string]float64{"budget": 5, "not_replayable": 9}},
		{"declared, no child yet", "# TYPE azimuth_hedges_total counter\n# TYPE azimuth_retries_refused_total counter\n", nil, map[string]float64{}, map[string]float64{}},
		{"absent", `azimuth_requests_total{code="200"} 1` + "\n", nil, nil, nil},
		{"escaped label values", `azimuth_retries_refused_total{pool="a\"p,p",reason="budget"} 4` + "\n", nil, nil, map[string]float64{"budget": 4}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := parseMetrics(strings.NewReader(tc.in))
			if err != nil || !m.Scraped {
				t.Fatalf("parseMetrics: %v", err)
			}
			if (m.RetriesTotal == nil) != (tc.retries == nil) || (m.RetriesTotal != nil && *m.RetriesTotal != *tc.retries) {
				t.Errorf("retries %v, want %v", m.RetriesTotal, tc.retries)
			}
			for name, pair := range map[string][2]map[string]float64{"hedges": {m.Hedges, tc.hedges}, "refused": {m.RetriesRefused, tc.refused}} {
				got, want := pair[0], pair[1]
				if (got == nil) != (want == nil) || len(got) != len(want) {
					t.Errorf("%s %v, want %v", name, got, want)
				}
				for k, v := range want {
					if got[k] != v {
						t.Errorf("%s[%s] = %v, want %v", name, k, got[k], v)
					}
				}
			}
		})
	}
}
