package acmetest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestVersionMatchesToolsModule(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "tools", "pebble", "go.mod"))
	if err != nil {
		t.Fatalf("reading the tools module: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "github.com/letsencrypt/pebble/v2" {
			if f[1] != Version {
				t.Fatalf("tools/pebble/go.mod builds pebble %s, acmetest.Version is %s", f[1], Version)
			}
			return
		}
	}
	t.Fatal("tools/pebble/go.mod does not require github.com/letsencrypt/pebble/v2")
}

func TestBinaryMissing(t *testing.T) {
	t.Setenv("AZIMUTH_PEBBLE_BIN", filepath.Join(t.TempDir(), "pebble"))
	if _, err := Binary(); err == nil || !strings.Contains(err.Error(), "tools/pebble/build.sh") {
		t.Fatalf("Binary with a missing file: %v, want the message naming tools/pebble/build.sh", err)
	}
}
