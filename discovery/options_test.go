package discovery

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadToken(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "token")
	if err := os.WriteFile(good, []byte("  s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == "CONSUL_HTTP_TOKEN" {
				return v
			}
			return ""
		}
	}
	tests := []struct {
		name    string
		file    string
		env     string
		want    string
		wantErr string
	}{
		{"file wins over env", good, "from-env", "s3cret", ""},
		{"env when no file", "", " from-env ", "from-env", ""},
		{"nothing", "", "", "", ""},
		{"missing file", filepath.Join(dir, "nope"), "from-env", "", "reading consul token file"},
		{"empty file", empty, "from-env", "", "file is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := LoadToken(tt.file, env(tt.env))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("LoadToken error = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("LoadToken = %q, %v; want %q, nil", got, err, tt.want)
			}
		})
	}
}

func TestPoolOptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		opts PoolOptions
		want []string
	}{
		{"valid", PoolOptions{Service: "api", Tags: []string{"v1"}}, nil},
		{"no service", PoolOptions{}, []string{"service: must not be empty"}},
		{"every problem", PoolOptions{Service: " ", Tags: []string{"a", ""}}, []string{"service:", "tags[1]:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.opts.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want errors %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, missing %q", err, w)
				}
			}
		})
	}
}

func TestNewClient(t *testing.T) {
	tests := []struct {
		name    string
		opts    Options
		wantErr string
	}{
		{"plain", Options{Address: "127.0.0.1:8500"}, ""},
		{"https address", Options{Address: "https://127.0.0.1:8501"}, ""},
		{"tls with http address", Options{Address: "http://127.0.0.1:8500", TLS: TLSOptions{ServerName: "consul"}}, "is http:// but tls is configured"},
		{"missing ca file", Options{Address: "127.0.0.1:8501", TLS: TLSOptions{CAFile: "/nonexistent/ca.pem"}}, "creating consul client"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewClient(tt.opts)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("NewClient = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("NewClient error = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}
