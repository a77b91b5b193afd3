package acmetest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// errNoBinary explains how to get Pebble; every test needing it fails with
// this message when it is missing.
var errNoBinary = errors.New("no pebble binary: run tools/pebble/build.sh (or set AZIMUTH_PEBBLE_BIN)")

// Binary finds the pebble executable (pebble-challtestsrv beside it):
// $AZIMUTH_PEBBLE_BIN, else where tools/pebble/build.sh puts it,
// ${AZIMUTH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/azimuth}/pebble-<Version>/pebble.
func Binary() (string, error) {
	p := os.Getenv("AZIMUTH_PEBBLE_BIN")
	if p == "" {
		root := os.Getenv("AZIMUTH_CACHE")
		if root == "" {
			base := os.Getenv("XDG_CACHE_HOME")
			if base == "" {
				home, err := os.UserHomeDir()
				if err != nil {
					return "", fmt.Errorf("finding the pebble cache directory: %w", err)
				}
				base = filepath.Join(home, ".cache")
			}
			root = filepath.Join(base, "azimuth")
		}
		p = filepath.Join(root, "pebble-"+Version, "pebble")
	}
	for _, f := range []string{p, filepath.Join(filepath.Dir(p), "pebble-challtestsrv")} {
		fi, err := os.Stat(f)
		if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			return "", fmt.Errorf("%s: %w", f, errNoBinary)
		}
	}
	return p, nil
}
