package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/loadtest"
)

// The binaries the tests run as real processes, built by TestMain with a
// plain go build (no -race: the processes are under test, not the race
// detector), and why one is missing.
var (
	azimuthBin, azloadBin string
	azimuthErr, azloadErr error
)

// envAzimuth, when set, names an azimuth binary the tests use instead of
// building ../azimuth: to measure another build (an older commit, for
// "before" numbers) with the same suite.
const envAzimuth = "AZLOAD_TEST_AZIMUTH"

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "azload-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	azimuthBin, azloadBin = filepath.Join(dir, "azimuth"), filepath.Join(dir, "azload")
	if bin := os.Getenv(envAzimuth); bin != "" {
		azimuthBin = bin
		if _, err := os.Stat(bin); err != nil {
			azimuthErr = fmt.Errorf("%s=%s: %w", envAzimuth, bin, err)
		}
	} else {
		azimuthErr = goBuild(azimuthBin, "../azimuth")
	}
	azloadErr = goBuild(azloadBin, ".")
	for _, err := range []error{azimuthErr, azloadErr} {
		if err != nil {
			fmt.Fprintf(os.Stderr, "azload tests: %v\n", err)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// goBuild builds the package in dir (relative to this one) into out.
func goBuild(out, dir string) error {
	cmd := exec.Command("go", "build", "-o", out, dir)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building %s: %w\n%s", dir, err, b)
	}
	return nil
}

// needAzimuth fails the test, never skips it, without the azimuth binary.
func needAzimuth(t *testing.T) {
	t.Helper()
	if azimuthErr != nil {
		t.Fatalf("this test runs the azimuth binary, which is missing: %v", azimuthErr)
	}
}

// needAzload fails the test without the azload binary.
func needAzload(t *testing.T) {
	t.Helper()
	if azloadErr != nil {
		t.Fatalf("this test runs the azload binary, which is missing: %v", azloadErr)
	}
}

// TestDemoShort plays the demo, shortened, against the real azimuth binary:
// zone a (the proxy's own) blackholed from 2s to 4s of a 6s run at 200
// req/s. Clients must not notice: at least 99.9% of the requests sent
// during the fault succeed.
func TestDemoShort(t *testing.T) {
	needAzimuth(t)
	report := filepath.Join(t.TempDir(), "demo.html")
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := run(ctx, []string{"demo", "-azimuth", azimuthBin, "-d", "6s", "-rate", "200",
		"-fault-from", "2s", "-fault-to", "4s", "-report", report, "-o", "json"}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("azload demo: %v\nstderr:\n%s", err, stderr.String())
	}
	var rep struct {
		Result *loadtest.Result `json:"result"`
		Phases []struct {
			Name     string `json:"name"`
			Requests int64  `json:"requests"`
			Failed   int64  `json:"failed"`
		} `json:"phases"`
		Faults []struct {
			Fault string `json:"fault"`
			Error string `json:"error"`
		} `json:"faults"`
		RetriesOK bool   `json:"retries_available"`
		StopError string `json:"azimuth_stop_error"`
		Pool      string `json:"azimuth_pool_config"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("decoding the JSON report: %v\n%s", err, stdout.String())
	}
	if len(rep.Faults) != 2 || rep.Faults[0].Error != "" || rep.Faults[1].Error != "" {
		t.Fatalf("faults applied: %+v, want blackhole and restore without errors", rep.Faults)
	}
	if len(rep.Phases) != 3 {
		t.Fatalf("phases %+v, want before, during, after", rep.Phases)
	}
	during := rep.Phases[1]
	if during.Requests < 390 {
		t.Fatalf("during the fault only %d requests were sent, want ~400", during.Requests)
	}
	success := float64(during.Requests-during.Failed) / float64(during.Requests)
	if success < 0.999 {
		t.Errorf("success during the fault %.4f%% (%d of %d failed), want ≥ 99.9%%; errors %v status %v",
			100*success, during.Failed, during.Requests, rep.Result.Errors, rep.Result.Status)
	}
	// The fault must really have hit: with zone a blackholed from second 2
	// to 4, no response of seconds 2 and 3 comes from zone a.
	for _, s := range rep.Result.Timeline {
		var total int64
		for _, n := range s.Zones {
			total += n
		}
		share := float64(s.Zones["a"]) / float64(max(total, 1))
		if (s.Second == 2 || s.Second == 3) && share > 0.05 {
			t.Errorf("second %d: zone a answered %.1f%% while blackholed", s.Second, 100*share)
		}
	}
	page, err := os.ReadFile(report)
	if err != nil {
		t.Fatalf("reading the HTML report: %v", err)
	}
	if n := strings.Count(string(page), "<svg"); n != 3 {
		t.Errorf("HTML report has %d charts, want 3", n)
	}
	// The demo runs defaults-only, and both reports say so.
	if !strings.Contains(string(page), "only a name and backends") {
		t.Errorf("HTML report does not show the defaults-only pool")
	}
	if !defaultsOnlyPool.MatchString(rep.Pool) {
		t.Errorf("the demo's pool:\n%s\nwant only a name and backends", rep.Pool)
	}
	if rep.StopError != "" {
		t.Errorf("azimuth did not stop cleanly on SIGTERM: %s", rep.StopError)
	}
	if !rep.RetriesOK {
		t.Log("azimuth_retries_total not exported by this azimuth build")
	}
}

func TestRunCommand(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Test") != "yes" || r.Method != http.MethodPut {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.Header().Set("X-Backend-Zone", "z")
	}))
	defer srv.Close()
	tests := []struct {
		name    string
		args    []string
		check   func(t *testing.T, out string)
		wantErr string
	}{
		{"json output", []string{"-n", "20", "-c", "2", "-m", "PUT", "-H", "X-Test: yes", "-o", "json", srv.URL}, func(t *testing.T, out string) {
			var res loadtest.Result
			if err := json.Unmarshal([]byte(out), &res); err != nil {
				t.Fatalf("json: %v\n%s", err, out)
			}
			if res.Requests != 20 || res.Status["200"] != 20 || res.Zones["z"] != 20 {
				t.Errorf("result %+v", res)
			}
		}, ""},
		{"text output without progress when not a terminal", []string{"run", "-rate", "100", "-d", "1s", "-m", "PUT", "-H", "X-Test: yes", srv.URL}, func(t *testing.T, out string) {
			if strings.Contains(out, "\r") {
				t.Errorf("progress written to a non-terminal: %q", out)
			}
			if !strings.Contains(out, "requests   100 in") || !strings.Contains(out, "p99.9") {
				t.Errorf("summary:\n%s", out)
			}
		}, ""},
		{"bad header", []string{"-H", "nocolon", srv.URL}, nil, `want "Name: value"`},
		{"bad output", []string{"-o", "xml", srv.URL}, nil, "want text or json"},
		{"no url", []string{"-n", "1"}, nil, "want exactly one URL"},
		{"bad protocol", []string{"-p", "h4", srv.URL}, nil, "want h1, h2 or h3"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), tc.args, &stdout, &stderr)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("run: %v\n%s", err, stderr.String())
			}
			tc.check(t, stdout.String())
		})
	}
}

// TestScenarioH3 runs a scenario file over HTTP/3 through the real azimuth
// (a TLS listener with QUIC, certificate made by the runner) while zone a
// refuses connections for a second.
func TestScenarioH3(t *testing.T) {
	needAzimuth(t)
	file := filepath.Join(t.TempDir(), "h3.yaml")
	spec := `name: h3-refuse
fleet: { zones: [a, b], backends_per_zone: 2 }
load: { rate: 100, duration: 3s, protocol: h3 }
azimuth: { zone: a }
faults:
  - { at: 1s, zone: a, fault: refuse }
  - { at: 2s, zone: a, fault: restore }
`
	if err := os.WriteFile(file, []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := run(ctx, []string{"scenario", "-azimuth", azimuthBin, "-report", "", "-o", "json", "-min-success", "99.9", file}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("azload scenario: %v\n%s", err, stdout.String())
	}
	var rep struct {
		Result *loadtest.Result `json:"result"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("decoding the JSON report: %v", err)
	}
	if rep.Result.Protocol != loadtest.H3 || rep.Result.Requests != 300 || rep.Result.Succeeded != 300 {
		t.Errorf("protocol %s: %d of %d succeeded, errors %v; want 300 of 300 over h3",
			rep.Result.Protocol, rep.Result.Succeeded, rep.Result.Requests, rep.Result.Errors)
	}
	if rep.Result.Zones["a"] == 0 || rep.Result.Zones["b"] == 0 {
		t.Errorf("zones %v: want answers from both", rep.Result.Zones)
	}
}
