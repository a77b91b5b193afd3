package discovery

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/azimuthproxy/azimuth/balancer"
	"github.com/azimuthproxy/azimuth/internal/consultest"
	"github.com/azimuthproxy/azimuth/internal/testwait"
)

// TestConsulOverTLS follows a service over HTTPS to an agent that requires
// client certificates, with certificates generated for the test.
func TestConsulOverTLS(t *testing.T) {
	agent := consultest.StartWith(t, consultest.Options{TLS: true})
	registerFleet(t, agent.Client())
	files := agent.TLS()
	full := TLSOptions{CAFile: files.CAFile, CertFile: files.ClientCertFile, KeyFile: files.ClientKeyFile}
	tests := []struct {
		name string
		tls  TLSOptions
		// wantErr lists acceptable error fragments; none means the fleet
		// must arrive. A missing client certificate shows in many ways:
		// TLS 1.3 lets the client finish its handshake before the agent
		// refuses, so the client sees an alert, a broken pipe, a reset or
		// HTTP/2 failing to set up, depending on timing.
		wantErr []string
	}{
		{"client certificate", full, nil},
		{"server name checked", TLSOptions{CAFile: full.CAFile, CertFile: full.CertFile, KeyFile: full.KeyFile, ServerName: "localhost"}, nil},
		{"wrong server name", TLSOptions{CAFile: full.CAFile, CertFile: full.CertFile, KeyFile: full.KeyFile, ServerName: "consul.example"}, []string{"certificate is valid for"}},
		{"no client certificate", TLSOptions{CAFile: full.CAFile}, []string{"querying health of service api: "}},
		{"unknown ca", TLSOptions{CAFile: files.ClientCertFile, CertFile: full.CertFile, KeyFile: full.KeyFile}, []string{"unknown authority"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client, err := NewClient(Options{Address: "https://" + agent.HTTPSAddr(), TLS: tt.tls})
			if err != nil {
				t.Fatal(err)
			}
			rec := newRecorder()
			w, err := NewWatcher(WatcherConfig{
				Pool: "api", Client: client, Options: fleetOpts, Sink: rec,
				Registerer: prometheus.NewRegistry(), Timing: testTiming, Logger: testLogger(t),
			})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- w.Run(ctx) }()
			defer func() {
				cancel()
				if err := <-done; !errors.Is(err, context.Canceled) {
					t.Errorf("Run returned %v", err)
				}
			}()
			if len(tt.wantErr) == 0 {
				got := waitFor(t, rec, 5*time.Second, "the fleet over https", func(s []balancer.Spec) bool { return len(s) == 6 })
				if !slices.Equal(got, fleetSpecs) {
					t.Errorf("set = %v, want %v", got, fleetSpecs)
				}
				return
			}
			testwait.Until(t, 5*time.Second, "a failed query", func() bool {
				return testutil.ToFloat64(w.metrics.errors.WithLabelValues("api")) >= 1
			})
			st := w.State()
			if st.Synced || !slices.ContainsFunc(tt.wantErr, func(w string) bool { return strings.Contains(st.LastError, w) }) {
				t.Errorf("State() = %+v, want not synced with an error mentioning %q", st, tt.wantErr)
			}
			if n := rec.count(); n != 0 {
				t.Errorf("sink called %d times though every query failed", n)
			}
		})
	}
}
