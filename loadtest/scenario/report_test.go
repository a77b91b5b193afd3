package scenario

import (
	"bytes"
	"context"
	"encoding/xml"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/loadtest"
	"github.com/azimuthproxy/azimuth/loadtest/fleet"
)

func TestParseRetries(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		want   map[string]float64
		wantOK bool
	}{
		{"summed by cause", `# HELP azimuth_retries_total Retries.
# TYPE azimuth_retries_total counter
azimuth_retries_total{cause="timeout",from_zone="a",pool="app",to_zone="b"} 7
azimuth_retries_total{cause="timeout",from_zone="a",pool="app",to_zone="c"} 5
azimuth_retries_total{cause="connect_failure",from_zone="a",pool="app",to_zone="b"} 2
azimuth_requests_total{code="200"} 100
`, map[string]float64{"timeout": 12, "connect_failure": 2}, true},
		{"declared but none yet", "# TYPE azimuth_retries_total counter\n", map[string]float64{}, true},
		{"absent", "azimuth_requests_total{code=\"200\"} 1\n", nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := parseRetries(strings.NewReader(tc.in))
			if ok != tc.wantOK || len(got) != len(tc.want) {
				t.Fatalf("got %v %v, want %v %v", got, ok, tc.want, tc.wantOK)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("%s = %v, want %v", k, got[k], v)
				}
			}
		})
	}
}

// TestReportFromRealLoad drives a real fleet backend through a blackhole
// window and checks the report's phases, text and HTML.
func TestReportFromRealLoad(t *testing.T) {
	fl, err := fleet.Start(fleet.Options{Zones: []string{"a", "b"}, PerZone: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Close()
	sc := Default()
	sc.Name = "unit"
	sc.Fleet.Zones, sc.Fleet.PerZone = []string{"a", "b"}, 1
	sc.Azimuth.Zone = "a"
	sc.Load.Duration, sc.Load.Rate = 3*time.Second, 100
	sc.Faults = []Event{
		{At: 1050 * time.Millisecond, Zone: "a", Fault: fleet.Fault{Kind: fleet.Status, Status: 503}},
		{At: 1900 * time.Millisecond, Zone: "a", Fault: fleet.Fault{Kind: fleet.Restore}},
	}
	done := make(chan []Applied, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	res, err := loadtest.Run(ctx, loadtest.Options{
		URL: "http://" + fl.Zone("a")[0].Addr + "/", Rate: 100, Duration: 3 * time.Second, Timeout: time.Second,
		Started: func(start time.Time) {
			go func() { done <- playFaults(ctx, fl, sc.Faults, start, &bytes.Buffer{}) }()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	applied := <-done
	total := 3.0
	obs := &observations{fleet: fl, start: res.Start, end: res.Start.Add(res.Elapsed), tailEnd: res.Start.Add(3 * time.Second),
		metrics: AzimuthMetrics{Scraped: true, RetriesTotal: &total, RetriesByCause: map[string]float64{"timeout": 3}}, config: ConfigYAML(sc.Azimuth, Listener{Address: "127.0.0.1:1"}, "127.0.0.1:2", "off", Endpoints(fl))}
	rep := newReport(sc, res, applied, obs)
	before, during, after := rep.Phase("before"), rep.Phase("during"), rep.Phase("after")
	if before.Requests != 100 || before.Failed != 0 || after.Failed != 0 {
		t.Errorf("before %+v after %+v: want 100 clean requests each side", before, after)
	}
	if during.Requests != 100 || during.Failed < 75 || during.Failed > 95 {
		t.Errorf("during %+v: want ~85 of 100 failed with 503", during)
	}
	var text bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, re := range []string{`success\s+[67]\d\.\d{3}%`, `http_503:\d+`, `during\s+1-2\s+100`, `retries\s+timeout:3`, `\n\s+1\*\s+100\.0%\s+0\.0%`,
		`azimuth ran with its defaults: a pool of only a name and backends:\n  \| pools:\n  \|   - name: app\n  \|     backends:\n`,
		`before\s+GET\s+100\s+100\s+100\.000%`, `during\s+GET\s+100\s+\d+\s+[12]\d\.\d{3}%`,
		`fault\s+1\.\d+s-1\.\d+s zone a: status: 503 \(ended by restore\)\n\s+not detected; hits during \d+, after detection 0; per-try not reported`,
		// The window's ends are exact to a 10 ms bucket: one request either way.
		`extra attempts per request: whole run 0\.000 \(300 backend hits for 300 sent\), fault window -?0\.0[01]0 \((99|100|101) for 100\)`,
		`zone share of backend hits, 1\.0s-3\.0s: a \(own\) 100\.0% b 0\.0%`,
	} {
		if !regexp.MustCompile(re).MatchString(text.String()) {
			t.Errorf("text report lacks %s:\n%s", re, text.String())
		}
	}
	rep.RetriesOK = false
	text.Reset()
	_ = rep.WriteText(&text)
	if !strings.Contains(text.String(), "retries    unavailable") {
		t.Errorf("without metrics the report must say unavailable:\n%s", text.String())
	}
	var page bytes.Buffer
	if err := rep.WriteHTML(&page); err != nil {
		t.Fatal(err)
	}
	h := page.String()
	svgs := regexp.MustCompile(`(?s)<svg.*?</svg>`).FindAllString(h, -1)
	if len(svgs) != 3 {
		t.Fatalf("want 3 inline charts, got %d", len(svgs))
	}
	for _, want := range []string{"<h2>What azimuth ran with</h2>", "only a name and backends", "<td class=l>zone a</td><td class=l>status: 503</td>", "<td class=l>GET</td>"} {
		if !strings.Contains(h, want) {
			t.Errorf("HTML report lacks %q", want)
		}
	}
	for i, s := range svgs {
		if err := xml.Unmarshal([]byte(s), new(struct{})); err != nil {
			t.Errorf("chart %d is not well-formed: %v", i, err)
		}
		if !strings.Contains(s, `fill="#fdd"`) {
			t.Errorf("chart %d does not shade the fault window", i)
		}
	}
	if strings.Contains(h, "http://") && strings.Contains(h, "<script") || strings.Contains(h, "src=") || strings.Contains(h, "<link") {
		t.Errorf("report must not load external assets")
	}
}

func TestRunFailsClearly(t *testing.T) {
	sc := Default()
	sc.Load.Duration = time.Second
	tests := []struct {
		name   string
		binary string
		want   string
	}{
		{"no binary", "", "no azimuth binary"},
		{"missing binary", "/nonexistent/azimuth", "azimuth binary:"},
		{"binary exits at once", "/bin/false", "azimuth exited before it was ready"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Run(context.Background(), sc, RunOptions{Binary: tc.binary, ReadyTimeout: 10 * time.Second})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestDemoOptions(t *testing.T) {
	sc, err := Demo(DemoOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sc.Load.Rate != 500 || sc.Load.Duration != 20*time.Second || len(sc.Fleet.Zones) != 3 || sc.Fleet.PerZone != 2 {
		t.Errorf("demo defaults %+v %+v", sc.Load, sc.Fleet)
	}
	if from, to, _ := sc.FaultWindow(); from != 5 || to != 15 || sc.Faults[0].Zone != sc.Azimuth.Zone {
		t.Errorf("demo window %d-%d on %s, want 5-15 on the proxy's zone", from, to, sc.Faults[0].Zone)
	}
	if !sc.Azimuth.DefaultsOnly() {
		t.Errorf("the demo sets azimuth keys %+v, want a defaults-only pool", sc.Azimuth)
	}
	if sc, _ := Demo(DemoOptions{PerTryLimit: 300 * time.Millisecond}); sc == nil || sc.Azimuth.PerTryTimeout == nil || *sc.Azimuth.PerTryTimeout != "300ms" {
		t.Errorf("PerTryLimit must still override the per-try timeout")
	}
	if _, err := Demo(DemoOptions{Duration: 5 * time.Second, FaultFrom: 4 * time.Second, FaultTo: 6 * time.Second}); err == nil {
		t.Error("a fault window past the end must be rejected")
	}
}
