package consultest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/consul/api"
)

func TestVersionMatchesToolsModule(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "tools", "consul", "go.mod"))
	if err != nil {
		t.Fatalf("reading the tools module: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "github.com/hashicorp/consul" {
			if f[1] != Version {
				t.Fatalf("tools/consul/go.mod builds consul %s, consultest.Version is %s", f[1], Version)
			}
			return
		}
	}
	t.Fatal("tools/consul/go.mod does not require github.com/hashicorp/consul")
}

func TestBinaryFromEnv(t *testing.T) {
	dir := t.TempDir()
	notExec := filepath.Join(dir, "consul")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		env     string
		wantErr string
	}{
		{"missing file", filepath.Join(dir, "nope"), "AZIMUTH_CONSUL_BIN="},
		{"not executable", notExec, "not an executable file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("AZIMUTH_CONSUL_BIN", tt.env)
			if _, err := Binary(); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Binary() = %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
	t.Run("nothing anywhere says how to build it", func(t *testing.T) {
		t.Setenv("AZIMUTH_CONSUL_BIN", "")
		t.Setenv("AZIMUTH_CACHE", dir)
		t.Setenv("PATH", dir)
		_, err := Binary()
		if err == nil || !strings.Contains(err.Error(), "tools/consul/build.sh") {
			t.Fatalf("Binary() = %v, want the build instruction", err)
		}
	})
}

func TestCachePath(t *testing.T) {
	tests := []struct {
		name, cache, xdg, home, want string
	}{
		{"azimuth cache wins", "/c", "/x", "/h", "/c/consul-" + Version + "/consul"},
		{"xdg", "", "/x", "/h", "/x/azimuth/consul-" + Version + "/consul"},
		{"home", "", "", "/h", "/h/.cache/azimuth/consul-" + Version + "/consul"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("AZIMUTH_CACHE", tt.cache)
			t.Setenv("XDG_CACHE_HOME", tt.xdg)
			t.Setenv("HOME", tt.home)
			got, err := CachePath()
			if err != nil || got != tt.want {
				t.Fatalf("CachePath() = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestAgentLifeCycle(t *testing.T) {
	a := Start(t)
	c := a.Client()
	if !strings.HasPrefix(a.Addr(), "127.0.0.1:") {
		t.Errorf("Addr() = %q, want loopback", a.Addr())
	}
	leader, err := c.Status().Leader()
	if err != nil || leader == "" {
		t.Fatalf("leader = %q, %v", leader, err)
	}
	if err := c.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: "web-1", Name: "web", Address: "127.0.1.1", Port: 80}); err != nil {
		t.Fatalf("registering a service: %v", err)
	}
	entries, meta, err := c.Health().Service("web", "", true, nil)
	if err != nil || len(entries) != 1 {
		t.Fatalf("health of web = %v, %v; want one instance", entries, err)
	}
	before := meta.LastIndex

	a.Stop()
	if _, err := c.Status().Leader(); err == nil {
		t.Fatal("the agent still answers after Stop")
	}
	a.Stop() // stopping twice is harmless

	addr := a.Addr()
	a.Restart()
	if a.Addr() != addr {
		t.Errorf("Restart moved the agent from %s to %s", addr, a.Addr())
	}
	entries, meta, err = c.Health().Service("web", "", true, nil)
	if err != nil {
		t.Fatalf("querying the restarted agent: %v", err)
	}
	if len(entries) != 0 {
		t.Errorf("restarted dev agent still has %d instances of web", len(entries))
	}
	t.Logf("index before restart %d, after %d", before, meta.LastIndex)
}

func TestAgentTLS(t *testing.T) {
	a := StartWith(t, Options{TLS: true})
	files := a.TLS()
	if files == nil {
		t.Fatal("TLS() = nil for an agent started with TLS")
	}
	newClient := func(cert, key string) *api.Client {
		cfg := api.DefaultNonPooledConfig()
		cfg.Address = "https://" + a.HTTPSAddr()
		cfg.TLSConfig = api.TLSConfig{CAFile: files.CAFile, CertFile: cert, KeyFile: key}
		c, err := api.NewClient(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	leader, err := newClient(files.ClientCertFile, files.ClientKeyFile).Status().Leader()
	if err != nil || leader == "" {
		t.Fatalf("leader over https with a client certificate = %q, %v", leader, err)
	}
	if _, err := newClient("", "").Status().Leader(); err == nil {
		t.Error("the agent answered over https without a client certificate")
	}
}

func TestAgentACL(t *testing.T) {
	a := StartWith(t, Options{ACLToken: "azimuth-root"})
	if err := a.Client().Agent().ServiceRegister(&api.AgentServiceRegistration{ID: "web-1", Name: "web", Port: 80}); err != nil {
		t.Fatalf("registering with the management token: %v", err)
	}
	cfg := api.DefaultNonPooledConfig()
	cfg.Address = a.Addr()
	cfg.Token = "not-a-token"
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Health().Service("web", "", true, nil); err == nil || !strings.Contains(err.Error(), "ACL not found") {
		t.Errorf("query with an unknown token = %v, want ACL not found", err)
	}
}

// A Persistent agent comes back from a restart with its catalog and a
// Raft index that goes on, where a -dev one comes back empty.
func TestPersistentAgentKeepsItsCatalog(t *testing.T) {
	a := StartWith(t, Options{Persistent: true})
	reg := &api.AgentServiceRegistration{ID: "web-1", Name: "web", Address: "127.0.1.1", Port: 8080}
	if err := a.Client().Agent().ServiceRegister(reg); err != nil {
		t.Fatal(err)
	}
	_, before, err := a.Client().Health().Service("web", "", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	a.Restart()
	entries, after, err := a.Client().Health().Service("web", "", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Service.ID != "web-1" {
		t.Fatalf("after a restart the catalog has %d instances of web, want web-1", len(entries))
	}
	if after.LastIndex < before.LastIndex {
		t.Errorf("the index went back from %d to %d across the restart", before.LastIndex, after.LastIndex)
	}
}
