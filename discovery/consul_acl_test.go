package discovery

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/azimuthproxy/azimuth/balancer"
	"github.com/azimuthproxy/azimuth/internal/consultest"
	"github.com/azimuthproxy/azimuth/internal/testwait"
)

// TestConsulACL follows a service on an agent with default-deny ACLs.
func TestConsulACL(t *testing.T) {
	const root = "azimuth-test-management"
	agent := consultest.StartWith(t, consultest.Options{ACLToken: root})
	c := agent.Client()
	registerFleet(t, c)
	// A token that may read the service but no node: Consul drops every
	// instance and says it filtered them. The watcher takes that for an
	// error, so a token's rights can never empty a pool.
	if _, _, err := c.ACL().PolicyCreate(&api.ACLPolicy{Name: "api-no-nodes", Rules: `service "api" { policy = "read" }`}, nil); err != nil {
		t.Fatalf("creating a policy: %v", err)
	}
	noNodes, _, err := c.ACL().TokenCreate(&api.ACLToken{Policies: []*api.ACLTokenPolicyLink{{Name: "api-no-nodes"}}}, nil)
	if err != nil {
		t.Fatalf("creating a token: %v", err)
	}
	tests := []struct {
		name  string
		token string
		// want is the set the sink must get; nil means none at all.
		want         []balancer.Spec
		wantFiltered bool
		wantErr      string
	}{
		{"token with rights", root, fleetSpecs, false, ""},
		{"token without node:read", noNodes.SecretID, nil, true, "consul hid instances from this token"},
		// Anonymous may not read the service at all: Consul answers with an
		// empty set and does not say it filtered anything, so the watcher
		// can only pass the answer on.
		{"no token", "", []balancer.Spec{}, false, ""},
		{"unknown token", "not-a-token", nil, false, "ACL not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("CONSUL_HTTP_TOKEN", "") // only Options.Token counts here
			client, err := NewClient(Options{Address: agent.Addr(), Token: tt.token})
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
			if tt.wantErr != "" {
				testwait.Until(t, 5*time.Second, "a failed query", func() bool {
					return testutil.ToFloat64(w.metrics.errors.WithLabelValues("api")) >= 1
				})
				if st := w.State(); st.Synced || !strings.Contains(st.LastError, tt.wantErr) || st.FilteredByACLs != tt.wantFiltered {
					t.Errorf("State() = %+v, want not synced with %q, FilteredByACLs %v", st, tt.wantErr, tt.wantFiltered)
				}
				if n := rec.count(); n != 0 {
					t.Errorf("sink called %d times with a rejected token", n)
				}
				return
			}
			got := waitFor(t, rec, 5*time.Second, "an answer", func(s []balancer.Spec) bool { return len(s) == len(tt.want) })
			if !slices.Equal(got, tt.want) {
				t.Errorf("set = %v, want %v", got, tt.want)
			}
			if st := w.State(); !st.Synced || st.FilteredByACLs != tt.wantFiltered {
				t.Errorf("State() = %+v, want synced with FilteredByACLs %v", st, tt.wantFiltered)
			}
		})
	}
}
