package edgetls

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/internal/testwait"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestExpiryGaugeAndWarnings(t *testing.T) {
	ca := newCA(t, "test CA")
	dir := t.TempDir()
	now := time.Now().Truncate(time.Second)
	clock := &fakeClock{now: now}
	soon := ca.issue(t, leafSpec{dns: []string{"soon.test"}, notAfter: now.Add(10 * 24 * time.Hour)})
	later := ca.issue(t, leafSpec{cn: "later by cn", notAfter: now.Add(60 * 24 * time.Hour)})
	renewed := ca.issue(t, leafSpec{dns: []string{"renewed.test", "soon.test"}, notAfter: now.Add(90 * 24 * time.Hour)})
	cfSoon := writePair(t, dir, "soon", soon)
	cfLater := writePair(t, dir, "later", later)

	reg := prometheus.NewPedanticRegistry()
	metrics, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	logs := &logRecorder{}
	src := newSource(t, Options{Listener: "https", Certs: []CertFile{cfSoon, cfLater}},
		Deps{Metrics: metrics, Logger: slog.New(logs), Clock: clock})
	testwait.Until(t, 5*time.Second, "Run to start its tickers", func() bool { return clock.liveTickers() == 2 })

	expect := func(body string) {
		t.Helper()
		const head = "# HELP azimuth_tls_certificate_expiry_seconds Seconds until the served certificate's NotAfter; name is its first DNS SAN or CN.\n# TYPE azimuth_tls_certificate_expiry_seconds gauge\n"
		if err := testutil.GatherAndCompare(reg, strings.NewReader(head+body), "azimuth_tls_certificate_expiry_seconds"); err != nil {
			t.Fatal(err)
		}
	}
	expect(`azimuth_tls_certificate_expiry_seconds{listener="https",name="later by cn"} 5.184e+06
azimuth_tls_certificate_expiry_seconds{listener="https",name="soon.test"} 864000
`)
	if n := logs.count(slog.LevelWarn, "certificate expires soon"); n != 1 {
		t.Fatalf("%d expiry warnings at load, want 1 (soon.test only)", n)
	}

	// A day later: the gauge counts down and the daily check warns again.
	clock.Advance(24 * time.Hour)
	testwait.Until(t, 5*time.Second, "the daily expiry warning", func() bool {
		return logs.count(slog.LevelWarn, "certificate expires soon") == 2
	})
	expect(`azimuth_tls_certificate_expiry_seconds{listener="https",name="later by cn"} 5.0976e+06
azimuth_tls_certificate_expiry_seconds{listener="https",name="soon.test"} 777600
`)

	// The renewed certificate has another first name: the old label goes.
	renameOver(t, cfSoon.KeyFile, renewed.keyPEM)
	renameOver(t, cfSoon.CertFile, renewed.certPEM)
	if err := src.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	expect(`azimuth_tls_certificate_expiry_seconds{listener="https",name="later by cn"} 5.0976e+06
azimuth_tls_certificate_expiry_seconds{listener="https",name="renewed.test"} 7.6896e+06
`)
	if got := testutil.ToFloat64(metrics.reloads.WithLabelValues("https", "ok")); got != 1 {
		t.Errorf("reloads ok = %v, want 1", got)
	}
	writeFile(t, cfLater.CertFile, []byte("garbage"))
	if err := src.Reload(); err == nil {
		t.Fatal("Reload of garbage returned no error")
	}
	if got := testutil.ToFloat64(metrics.reloads.WithLabelValues("https", "refused")); got < 1 {
		t.Errorf("reloads refused = %v, want at least 1", got)
	}
	writeFile(t, cfLater.CertFile, later.certPEM)

	// Another listener, and a new generation of this one built while the
	// old one still serves, share the Metrics.
	newSource(t, Options{Listener: "other", Certs: []CertFile{cfLater}}, Deps{Metrics: metrics, Clock: clock})
	newSource(t, Options{Listener: "https", Certs: []CertFile{cfSoon}}, Deps{Metrics: metrics, Clock: clock})
	expect(`azimuth_tls_certificate_expiry_seconds{listener="https",name="later by cn"} 5.0976e+06
azimuth_tls_certificate_expiry_seconds{listener="https",name="renewed.test"} 7.6896e+06
azimuth_tls_certificate_expiry_seconds{listener="other",name="later by cn"} 5.0976e+06
`)
	// Retiring the old generation takes its certificates out.
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	expect(`azimuth_tls_certificate_expiry_seconds{listener="https",name="renewed.test"} 7.6896e+06
azimuth_tls_certificate_expiry_seconds{listener="other",name="later by cn"} 5.0976e+06
`)

	if _, err := NewMetrics(reg); err == nil {
		t.Fatal("a second Metrics registered on one registry")
	}
}
