package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// copyBinary copies a built binary into dir.
func copyBinary(t *testing.T, src, dir string) string {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, filepath.Base(src))
	if err := os.WriteFile(dst, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return dst
}

// azload demo with no -azimuth finds the azimuth beside it, else the one
// on PATH, and says what to do when there is none.
func TestDemoFindsAzimuth(t *testing.T) {
	needAzimuth(t)
	needAzload(t)
	demo := func(azload, path string) (string, error) {
		cmd := exec.Command(azload, "demo", "-d", "2s", "-rate", "50", "-fault-from", "500ms", "-fault-to", "1s", "-report", "", "-o", "json")
		cmd.Env = append(os.Environ(), "PATH="+path)
		cmd.Dir = t.TempDir()
		out, err := cmd.Output()
		if ee, ok := err.(*exec.ExitError); ok {
			return string(ee.Stderr), err
		}
		return string(out), err
	}
	ran := func(t *testing.T, out string) {
		t.Helper()
		var rep struct {
			Result struct {
				Requests int64 `json:"requests"`
			} `json:"result"`
		}
		if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.Result.Requests == 0 {
			t.Fatalf("no report of a run: %v\n%s", err, out)
		}
	}
	empty := t.TempDir()

	t.Run("beside azload", func(t *testing.T) {
		dir := t.TempDir()
		copyBinary(t, azimuthBin, dir)
		out, err := demo(copyBinary(t, azloadBin, dir), empty)
		if err != nil {
			t.Fatalf("azload demo: %v\n%s", err, out)
		}
		ran(t, out)
	})
	t.Run("on PATH", func(t *testing.T) {
		onPath := t.TempDir()
		copyBinary(t, azimuthBin, onPath)
		out, err := demo(copyBinary(t, azloadBin, t.TempDir()), onPath)
		if err != nil {
			t.Fatalf("azload demo: %v\n%s", err, out)
		}
		ran(t, out)
	})
	t.Run("nowhere", func(t *testing.T) {
		out, err := demo(copyBinary(t, azloadBin, t.TempDir()), empty)
		if err == nil || !strings.Contains(out, "no azimuth binary") || !strings.Contains(out, "-azimuth") {
			t.Fatalf("azload demo with no azimuth anywhere: %v\n%s", err, out)
		}
	})
}
