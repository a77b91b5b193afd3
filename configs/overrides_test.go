package configs

import (
	"path/filepath"
	"testing"
)

func TestOverridesConfig(t *testing.T) {
	t.Setenv(EnvZone, "")
	dir := t.TempDir()
	name := filepath.Join(dir, "azimuth.yaml")
	consul := "consul: { address: 127.0.0.1:8500 }\n"
	for _, tc := range []struct {
		name, yaml, path, msg string
	}{
		{"prefix without consul", "overrides: { consul_prefix: x/ } #<\n", "overrides.consul_prefix", "needs a consul block"},
		{"prefix from the root", consul + "overrides: { consul_prefix: /x/ } #<\n", "overrides.consul_prefix", "does not start with /"},
		{"file is a directory", "overrides: { file: " + dir + " } #<\n", "overrides.file", "is a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) { wantProblem(t, name, tc.yaml+okListeners+okPools, tc.path, tc.msg) })
	}

	for _, tc := range []struct {
		name, yaml, state string
		file, prefix      string
	}{
		{"nothing without a state directory", "", "", "", ""},
		{"file under the state directory", "", "/var/lib/azimuth", "/var/lib/azimuth/overrides.json", ""},
		{"first of several state directories", "", "/var/lib/a:/var/lib/b", "/var/lib/a/overrides.json", ""},
		{"shared with consul", consul, "", "", DefaultOverridesPrefix},
		{"not shared", consul + "overrides: { consul_prefix: \"off\" }\n", "", "", OverridesNotShared},
		{"relative file", "overrides: { file: state/o.json }\n", "/var/lib/azimuth", filepath.Join(dir, "state/o.json"), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("STATE_DIRECTORY", tc.state)
			c, err := Parse(name, []byte(tc.yaml+okListeners+okPools))
			if err != nil {
				t.Fatal(err)
			}
			if c.Overrides.File != tc.file || c.Overrides.ConsulPrefix != tc.prefix {
				t.Errorf("overrides %+v, want file %q prefix %q", c.Overrides, tc.file, tc.prefix)
			}
		})
	}
}
