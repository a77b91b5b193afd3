package consultest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// Version is the Consul release tools/consul builds; it names the cache
// directory and must match tools/consul/go.mod (a test checks).
const Version = "v1.22.0"

// errNoBinary explains how to get the agent; it is the message every test
// needing an agent fails with when none is found.
var errNoBinary = errors.New("no consul binary: run tools/consul/build.sh " +
	"(or set AZIMUTH_CONSUL_BIN, or put consul on PATH)")

// CachePath is where tools/consul/build.sh puts the binary:
// ${AZIMUTH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/azimuth}/consul-<Version>/consul.
func CachePath() (string, error) {
	root := os.Getenv("AZIMUTH_CACHE")
	if root == "" {
		base := os.Getenv("XDG_CACHE_HOME")
		if base == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				return "", fmt.Errorf("finding the consul cache directory: %w", err)
			}
			base = filepath.Join(home, ".cache")
		}
		root = filepath.Join(base, "azimuth")
	}
	return filepath.Join(root, "consul-"+Version, "consul"), nil
}

// Binary finds the consul executable: $AZIMUTH_CONSUL_BIN, else the
// build.sh cache path, else consul on PATH.
func Binary() (string, error) {
	if p := os.Getenv("AZIMUTH_CONSUL_BIN"); p != "" {
		if err := executable(p); err != nil {
			return "", fmt.Errorf("AZIMUTH_CONSUL_BIN=%s: %w", p, err)
		}
		return p, nil
	}
	if p, err := CachePath(); err == nil && executable(p) == nil {
		return p, nil
	}
	if p, err := exec.LookPath("consul"); err == nil {
		return p, nil
	}
	return "", errNoBinary
}

// executable reports why p cannot be run, or nil.
func executable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", p)
	}
	return nil
}
