package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
)

// findAzimuth returns the azimuth binary to run when none is named: the
// one beside this azload (a release archive or `make build` puts them
// together), else the first on PATH.
func findAzimuth() (string, error) {
	if self, err := os.Executable(); err == nil {
		if real, err := filepath.EvalSymlinks(self); err == nil {
			self = real
		}
		next := filepath.Join(filepath.Dir(self), "azimuth")
		if fi, err := os.Stat(next); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return next, nil
		}
	}
	if p, err := exec.LookPath("azimuth"); err == nil {
		return p, nil
	}
	return "", errors.New("no azimuth binary: pass -azimuth PATH, or put azimuth beside azload or on PATH")
}
