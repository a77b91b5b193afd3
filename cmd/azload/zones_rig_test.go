package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// scenarioReport is the part of `azload scenario -o json` the suites read,
// decoded by field name as any script would: a renamed field fails here.
type scenarioReport struct {
	Scenario     string        `json:"scenario"`
	Pool         string        `json:"azimuth_pool_config"`
	OwnZone      string        `json:"own_zone"`
	MethodPhases []methodPhase `json:"method_phases"`
	Faults       []struct {
		Fault string `json:"fault"`
		Error string `json:"error"`
	} `json:"faults"`
	FaultEvents []faultEvent `json:"fault_events"`
	Attempts    struct {
		Whole       attemptWindow  `json:"whole"`
		FaultWindow *attemptWindow `json:"fault_window"`
	} `json:"extra_attempts"`
	Duplicates struct {
		IDHeader      string `json:"id_header"`
		NonIdempotent int64  `json:"non_idempotent"`
		GET           int64  `json:"get"`
		ByMethod      map[string]struct {
			IDs        int64 `json:"ids"`
			Duplicated int64 `json:"duplicated"`
		} `json:"by_method"`
	} `json:"duplicates"`
	ZoneShares struct {
		OwnZone  string             `json:"own_zone"`
		OwnShare float64            `json:"own_share"`
		Shares   map[string]float64 `json:"shares"`
	} `json:"zone_shares_last_2s"`
	Metrics struct {
		Scraped        bool               `json:"scraped"`
		RetriesTotal   *float64           `json:"retries_total"`
		Hedges         map[string]float64 `json:"hedges_total"`
		RetriesRefused map[string]float64 `json:"retries_refused_total"`
	} `json:"azimuth_metrics"`
	Probes []struct {
		Status    int     `json:"status"`
		LatencyMS float64 `json:"latency_ms"`
		Error     string  `json:"error"`
	} `json:"probes"`
	Status struct {
		Polls          int  `json:"polls"`
		PerTryReported bool `json:"per_try_reported"`
	} `json:"status_polls"`
	StopError string `json:"azimuth_stop_error"`
}

type methodPhase struct {
	Phase          string `json:"phase"`
	Method         string `json:"method"`
	Sent           int64  `json:"sent"`
	Succeeded      int64  `json:"succeeded"`
	SuccessPercent string `json:"success_percent"`
	P99            int64  `json:"p99_us"`
	Max            int64  `json:"max_us"`
}

type faultEvent struct {
	Target             string   `json:"target"`
	Fault              string   `json:"fault"`
	Detected           bool     `json:"detected"`
	DetectedAfterMS    *float64 `json:"detected_after_ms"`
	HitsDuring         int64    `json:"hits_during"`
	HitsAfterDetection int64    `json:"hits_after_detection"`
	PerTryMode         string   `json:"per_try_mode"`
	PerTryAtStartMS    *float64 `json:"per_try_at_start_ms"`
	PerTryMaxMS        *float64 `json:"per_try_max_ms"`
}

type attemptWindow struct {
	FromSeconds float64 `json:"from_s"`
	ToSeconds   float64 `json:"to_s"`
	Sent        int64   `json:"sent"`
	BackendHits int64   `json:"backend_hits"`
	Extra       float64 `json:"extra_attempts_per_request"`
}

// phase returns the method's figures in the named phase.
func (r *scenarioReport) phase(name, method string) (methodPhase, bool) {
	for _, p := range r.MethodPhases {
		if p.Phase == name && p.Method == method {
			return p, true
		}
	}
	return methodPhase{}, false
}

// defaultsOnlyPool matches the pool of a config with no pool key: a name
// and backends, nothing else.
var defaultsOnlyPool = regexp.MustCompile(`^pools:\n  - name: app\n    backends:\n(      - \{ address: "[0-9.]+:[0-9]+", zone: "[^"]+" \}\n)+$`)

// runScenario writes spec to a file and runs `azload scenario -o json` on
// it as a real process against azimuthBin, bounded by limit.
func runScenario(t *testing.T, spec string, limit time.Duration) *scenarioReport {
	t.Helper()
	file := filepath.Join(t.TempDir(), "scenario.yaml")
	if err := os.WriteFile(file, []byte(spec), 0o644); err != nil {
		t.Fatalf("writing the scenario: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, azloadBin, "scenario", "-azimuth", azimuthBin, "-report", "", "-o", "json", file)
	// On timeout azload gets an interrupt, so it stops its azimuth and
	// fleet; a kill follows if it does not exit.
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 20 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("azload scenario (limit %v): %v\nstderr:\n%s\nscenario:\n%s", limit, err, stderr.String(), spec)
	}
	var rep scenarioReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("decoding the JSON report: %v\n%s", err, stdout.String())
	}
	for _, f := range rep.Faults {
		if f.Error != "" {
			t.Fatalf("fault %s failed to apply: %s", f.Fault, f.Error)
		}
	}
	return &rep
}

// summary is one case's numbers in one line, for the log and the table
// at the end of the suite.
func (r *scenarioReport) summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "GET")
	for _, ph := range []string{"before", "during", "after", "all"} {
		if p, ok := r.phase(ph, "GET"); ok {
			fmt.Fprintf(&b, " %s %s", ph, p.SuccessPercent)
		}
	}
	if p, ok := r.phase("during", "GET"); ok {
		fmt.Fprintf(&b, "; fault p99 %s", usDur(p.P99))
	}
	for _, e := range r.FaultEvents {
		fmt.Fprintf(&b, "; %s %s: per-try %s, detected %s, late hits %d", e.Target, e.Fault, e.perTry(), e.detection(), e.HitsAfterDetection)
	}
	fmt.Fprintf(&b, "; extra attempts/request %.3f", r.Attempts.Whole.Extra)
	if w := r.Attempts.FaultWindow; w != nil {
		fmt.Fprintf(&b, " (fault window %.3f)", w.Extra)
	}
	fmt.Fprintf(&b, "; POST duplicates %d; own-zone share of the last 2s %.3f", r.Duplicates.NonIdempotent, r.ZoneShares.OwnShare)
	return b.String()
}

func (e faultEvent) perTry() string {
	if e.PerTryMaxMS == nil {
		return "not reported"
	}
	return fmt.Sprintf("%s %s..%s", e.PerTryMode, msDur(*e.PerTryAtStartMS), msDur(*e.PerTryMaxMS))
}

func (e faultEvent) detection() string {
	if !e.Detected {
		return "never"
	}
	return "after " + msDur(*e.DetectedAfterMS)
}

func usDur(us int64) string {
	return (time.Duration(us) * time.Microsecond).Round(100 * time.Microsecond).String()
}

func msDur(ms float64) string {
	return time.Duration(ms * float64(time.Millisecond)).Round(100 * time.Microsecond).String()
}
