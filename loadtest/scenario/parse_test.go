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
	if sc.Azimuth.Zone != "west" || sc.Azimuth.PerTryTimeout != 150*time.Millisecond || sc.Azimuth.Attempts != 3 {
		t.Errorf("azimuth %+v", sc.Azimuth)
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
