package scenario

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/loadtest/fleet"
)

const good = `name: outage
fleet:
  zones: [east, west]
  backends_per_zone: 3
  latency: { fixed: 1ms, jitter: 500us }
load:
  rate: 300
  duration: 10s
  method: POST
  path: /orders
  headers: { X-Tenant: k }
  id_header: Idempotency-Key
azimuth:
  binary: /usr/local/bin/azimuth
  zone: west
  per_try_timeout: 150ms
faults:
  - { at: 2s, zone: west, fault: blackhole }
  - { at: 3s, backend: east-2, fault: "slow: 300ms" }
  - { at: 6s, zone: west, fault: restore }
`

func TestParseGood(t *testing.T) {
	sc, err := Parse("s.yaml", []byte(good))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if sc.Name != "outage" || sc.Fleet.PerZone != 3 || sc.Fleet.Latency.Jitter != 500*time.Microsecond {
		t.Errorf("fleet %+v name %q", sc.Fleet, sc.Name)
	}
	if sc.Load.Rate != 300 || sc.Load.Method != "POST" || sc.Load.Headers["X-Tenant"] != "k" || sc.Load.IDHeader != "Idempotency-Key" || sc.Load.Timeout != 2*time.Second {
		t.Errorf("load %+v", sc.Load)
	}
	if sc.Azimuth.Zone != "west" || *sc.Azimuth.PerTryTimeout != "150ms" || sc.Azimuth.Attempts != nil {
		t.Errorf("azimuth %+v: want zone west, per-try 150ms and nothing else set", sc.Azimuth)
	}
	want := []Event{
		{At: 2 * time.Second, Zone: "west", Fault: fleet.Fault{Kind: fleet.Blackhole}, Line: 18},
		{At: 3 * time.Second, Backend: "east-2", Fault: fleet.Fault{Kind: fleet.Slow, Delay: 300 * time.Millisecond}, Line: 19},
		{At: 6 * time.Second, Zone: "west", Fault: fleet.Fault{Kind: fleet.Restore}, Line: 20},
	}
	if len(sc.Faults) != len(want) {
		t.Fatalf("faults %+v", sc.Faults)
	}
	for i := range want {
		if sc.Faults[i] != want[i] {
			t.Errorf("fault %d = %+v, want %+v", i, sc.Faults[i], want[i])
		}
	}
	if from, to, ok := sc.FaultWindow(); !ok || from != 2 || to != 6 {
		t.Errorf("fault window %d-%d %v, want 2-6", from, to, ok)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		file string
		want []string // each must appear in the joined error
	}{
		{"unknown top key", "fleet: {zones: [a]}\nlod: {rate: 1}\n", []string{"s.yaml:2: lod: unknown key"}},
		{"unknown nested key", "fleet:\n  zones: [a]\n  backend_per_zone: 2\n", []string{"s.yaml:3: fleet.backend_per_zone: unknown key"}},
		{"bad duration", "load:\n  rate: 10\n  duration: ten seconds\n", []string{`s.yaml:3: load.duration: "ten seconds" is not a duration`}},
		{"bad number", "load:\n  rate: fast\n", []string{`s.yaml:2: load.rate: "fast" is not a non-negative number`}},
		{"negative count", "fleet:\n  backends_per_zone: -1\n", []string{"s.yaml:2: fleet.backends_per_zone:"}},
		{"repeated key", "load:\n  rate: 1\n  rate: 2\n", []string{"s.yaml:3: load.rate: repeated key"}},
		{"list where a value belongs", "load:\n  method: [GET]\n", []string{"s.yaml:2: load.method: want a single value"}},
		{"bad fault", "faults:\n  - {at: 1s, zone: a, fault: melt}\n", []string{`s.yaml:2: faults[0].fault: fault "melt"`}},
		{"fault without target", "faults:\n  - {at: 1s, fault: refuse}\n", []string{"s.yaml:2: faults[0]: want exactly one of zone or backend"}},
		{"fault without time", "faults:\n  - {zone: a, fault: refuse}\n", []string{"s.yaml:2: faults[0].at: missing"}},
		{"fault in unknown zone", "faults:\n  - {at: 1s, zone: z, fault: refuse}\n", []string{`s.yaml:2: faults[0].zone: "z" is not a fleet zone`}},
		{"fault on unknown backend", "faults:\n  - {at: 1s, backend: a-9, fault: refuse}\n", []string{`s.yaml:2: faults[0].backend: "a-9" is not a fleet backend`}},
		{"fault after the end", "load: {rate: 1, duration: 5s}\nfaults:\n  - {at: 5s, zone: a, fault: refuse}\n", []string{"s.yaml:3: faults[0].at: 5s is not before the end"}},
		{"azimuth zone not in fleet", "azimuth:\n  zone: mars\n", []string{`s.yaml:2: azimuth.zone: "mars" is not a fleet zone`}},
		{"unknown protocol", "load:\n  protocol: spdy\n", []string{`s.yaml:2: load.protocol: "spdy": want h1, h2 or h3`}},
		{"bad bool", "load:\n  tls: yes please\n", []string{`s.yaml:2: load.tls: "yes please": want true or false`}},
		{"unbounded load", "load:\n  duration: 0s\n", []string{"s.yaml:2: load: want a duration or a request count"}},
		{"every error reported", "fleet:\n  zonez: [a]\nload:\n  rat: 1\n", []string{"s.yaml:2: fleet.zonez", "s.yaml:4: load.rat"}},
		{"not yaml", "load: [\n", []string{"s.yaml: yaml:"}},
		{"not a mapping", "- 1\n", []string{"s.yaml:1: scenario: want a mapping"}},
		{"empty", "", []string{"s.yaml:1: scenario is empty"}},
		{"old budget key", "azimuth:\n  budget_min_concurrency: 20\n", []string{"s.yaml:2: azimuth.budget_min_concurrency: replaced by budget_min_per_second and budget_window"}},
		{"bad per-try", "azimuth:\n  per_try_timeout: soon\n", []string{`s.yaml:2: azimuth.per_try_timeout: "soon": want auto, off or a positive duration`}},
		{"zero per-try", "azimuth:\n  per_try_timeout: 0s\n", []string{"want auto, off or a positive duration"}},
		{"attempts zero", "azimuth:\n  attempts: 0\n", []string{"s.yaml:2: azimuth.attempts: want at least 1"}},
		{"panic above spill", "azimuth:\n  spill_below: 0.3\n  panic_below: 0.5\n", []string{"azimuth.panic_below: want 0 ≤ panic_below ≤ spill_below ≤ 1"}},
		{"percent above 100", "azimuth:\n  budget_percent: 120\n", []string{"s.yaml:2: azimuth.budget_percent: 120: want 0 to 100"}},
		{"health path", "azimuth:\n  health_path: healthz\n", []string{`azimuth.health_path: "healthz" must start with /`}},
		{"mix not a list", "load:\n  mix: GET\n", []string{"s.yaml:2: load.mix: want a list"}},
		{"mix entry without weight", "load:\n  mix:\n    - { method: GET }\n", []string{"s.yaml:3: load.mix[0].weight: want at least 1"}},
		{"mix entry unknown key", "load:\n  mix:\n    - { method: GET, weight: 1, share: 2 }\n", []string{"load.mix[0].share: unknown key"}},
		{"mix with method", "load:\n  method: POST\n  mix:\n    - { method: GET, weight: 1 }\n", []string{"s.yaml:4: load.mix: replaces load.method and load.body"}},
		{"probe without path", "probes:\n  - { at: 1s }\n", []string{`s.yaml:2: probes[0].path: "" must start with /`}},
		{"probe after the end", "load: {rate: 1, duration: 5s}\nprobes:\n  - { at: 6s, path: / }\n", []string{"s.yaml:3: probes[0].at: 6s is not before the end"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("s.yaml", []byte(tc.file))
			if err == nil {
				t.Fatalf("Parse accepted:\n%s", tc.file)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error:\n%v\nwant it to contain %q", err, w)
				}
			}
		})
	}
}

// TestParseAzimuthKeys sets every azimuth key and checks each is kept as
// set, zeros included; and that a file setting none leaves all unset.
func TestParseAzimuthKeys(t *testing.T) {
	all := `azimuth:
  connect_timeout: 100ms
  per_try_timeout: auto
  request_timeout: 3s
  attempts: 3
  retry_on: [connect_failure, "503"]
  idempotency_header: Idempotency-Key
  budget_percent: 0
  budget_min_per_second: 10
  budget_window: 10s
  health_path: /ready
  health_interval: 500ms
  health_timeout: 200ms
  rise: 2
  fall: 0
  consecutive_failures: 3
  ejection: 5s
  max_ejected_percent: 50
  spill_below: 0.7
  panic_below: 0
`
	sc, err := Parse("s.yaml", []byte(all))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	a := sc.Azimuth
	if *a.ConnectTimeout != 100*time.Millisecond || *a.PerTryTimeout != "auto" || *a.RequestTimeout != 3*time.Second ||
		*a.Attempts != 3 || strings.Join(a.RetryOn, ",") != "connect_failure,503" || *a.IdempotencyHeader != "Idempotency-Key" ||
		*a.BudgetPercent != 0 || *a.BudgetMinPerSecond != 10 || *a.BudgetWindow != 10*time.Second ||
		*a.HealthPath != "/ready" || *a.HealthInterval != 500*time.Millisecond || *a.HealthTimeout != 200*time.Millisecond ||
		*a.Rise != 2 || *a.Fall != 0 || *a.ConsecutiveFailures != 3 || *a.Ejection != 5*time.Second ||
		*a.MaxEjectedPercent != 50 || *a.SpillBelow != 0.7 || *a.PanicBelow != 0 {
		t.Errorf("azimuth keys not kept as set: %+v", a)
	}
	sc, err = Parse("s.yaml", []byte("fleet: { zones: [x, y] }\n"))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if !sc.Azimuth.DefaultsOnly() || sc.Azimuth.Zone != "x" {
		t.Errorf("a file without azimuth keys set %+v; want none, and zone x", sc.Azimuth)
	}
}

func TestParseMixAndProbes(t *testing.T) {
	sc, err := Parse("s.yaml", []byte(`load:
  concurrency: 64
  duration: 10s
  mix:
    - { method: GET, weight: 90 }
    - { method: POST, weight: 10 }
    - { method: PUT, weight: 1, body: "" }
probes:
  - { at: 2s, path: "/sleep?d=5s" }
  - { at: 1s, method: HEAD, path: / }
`))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	m := sc.Load.Mix
	if len(m) != 3 || m[0].Method != "GET" || m[0].Weight != 90 || m[1].Body != nil || m[2].Body == nil || len(m[2].Body) != 0 {
		t.Errorf("mix %+v: want GET 90, POST 10 with the default body, PUT 1 with an empty one", m)
	}
	if sc.Load.EffectiveIDHeader() != "X-Load-Id" {
		t.Errorf("id header %q, want X-Load-Id with a mix", sc.Load.EffectiveIDHeader())
	}
	if sc.Load.Rate != 0 || sc.Load.Concurrency != 64 {
		t.Errorf("rate %v concurrency %d: concurrency alone must mean a closed loop", sc.Load.Rate, sc.Load.Concurrency)
	}
	want := []Probe{{At: 2 * time.Second, Method: "GET", Path: "/sleep?d=5s", Line: 9}, {At: time.Second, Method: "HEAD", Path: "/", Line: 10}}
	if len(sc.Probes) != 2 || sc.Probes[0] != want[0] || sc.Probes[1] != want[1] {
		t.Errorf("probes %+v, want %+v", sc.Probes, want)
	}
}

func TestExamplesParse(t *testing.T) {
	files, err := filepath.Glob("examples/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no example scenarios: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			if _, err := LoadFile(f); err != nil {
				t.Errorf("example does not parse: %v", err)
			}
		})
	}
}
