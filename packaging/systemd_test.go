package packaging

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/configs"
)

const (
	unitFile    = "../configs/systemd/azimuth.service"
	unitBinary  = "/usr/local/bin/azimuth"
	unitMaxRisk = 2.0 // systemd-analyze security's exposure, 0 (best) to 10
)

// unitKeys reads a unit file's [Service] (and other) keys: section.key to
// every value in order, since keys like ExecReload= and
// SystemCallFilter= may repeat.
func unitKeys(t *testing.T, data string) map[string][]string {
	t.Helper()
	keys := map[string][]string{}
	section := ""
	sc := bufio.NewScanner(strings.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = strings.Trim(line, "[]")
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: %q is not key=value in a section", unitFile, n, line)
			}
			keys[section+"."+strings.TrimSpace(k)] = append(keys[section+"."+strings.TrimSpace(k)], strings.TrimSpace(v))
		}
	}
	return keys
}

// TestSystemdUnitKeys checks what the unit promises operators.
func TestSystemdUnitKeys(t *testing.T) {
	data, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	keys := unitKeys(t, string(data))
	one := func(k string) string {
		v := keys["Service."+k]
		if len(v) == 0 {
			return ""
		}
		return v[len(v)-1] // the last assignment wins for single-valued keys
	}
	for _, kv := range [][2]string{
		{"Type", "notify"},
		{"NotifyAccess", "main"},
		{"ExecStart", unitBinary + " -config /etc/azimuth/azimuth.yaml"},
		{"DynamicUser", "yes"},
		{"AmbientCapabilities", "CAP_NET_BIND_SERVICE"},
		{"CapabilityBoundingSet", "CAP_NET_BIND_SERVICE"},
		{"NoNewPrivileges", "yes"},
		{"ProtectSystem", "strict"},
		{"ProtectHome", "yes"},
		{"PrivateTmp", "yes"},
		{"PrivateDevices", "yes"},
		{"ProtectKernelTunables", "yes"},
		{"ProtectKernelModules", "yes"},
		{"ProtectKernelLogs", "yes"},
		{"ProtectControlGroups", "yes"},
		{"ConfigurationDirectory", "azimuth"},
		{"LogsDirectory", "azimuth"},
		{"StateDirectory", "azimuth"},
		{"LimitNOFILE", "1048576"},
	} {
		if got := one(kv[0]); got != kv[1] {
			t.Errorf("%s=%q, want %q", kv[0], got, kv[1])
		}
	}
	if got := strings.Fields(one("RestrictAddressFamilies")); !slices.Equal(slices.Sorted(slices.Values(got)), []string{"AF_INET", "AF_INET6", "AF_UNIX"}) {
		t.Errorf("RestrictAddressFamilies=%v, want AF_INET AF_INET6 AF_UNIX", got)
	}
	if f := keys["Service.SystemCallFilter"]; len(f) == 0 || f[0] != "@system-service" {
		t.Errorf("SystemCallFilter=%v, want @system-service first", f)
	}
	if r := keys["Service.ExecReload"]; len(r) == 0 || r[len(r)-1] != "/bin/kill -HUP $MAINPID" {
		t.Errorf("ExecReload=%v, want it to end with /bin/kill -HUP $MAINPID", r)
	}

	// The stop timeout must outlast the default drain, or systemd kills
	// requests still in flight.
	cfg, err := configs.Parse("minimal.yaml", []byte("listeners: [ { name: http, address: 127.0.0.1:8080, routes: [ { pool: web } ] } ]\npools: [ { name: web, backends: [ { address: 127.0.0.1:9001 } ] } ]\n"))
	if err != nil {
		t.Fatal(err)
	}
	drain := cfg.Shutdown.DrainDelay + cfg.Shutdown.Grace
	stop, err := time.ParseDuration(one("TimeoutStopSec"))
	if err != nil || stop <= drain {
		t.Errorf("TimeoutStopSec=%s (%v), want more than drain_delay + grace = %s", one("TimeoutStopSec"), err, drain)
	}
}

// TestSystemdUnitVerifies runs systemd-analyze on a copy of the unit whose
// binary is a real azimuth build: verify must print nothing (an unknown
// key or a bad value is only a warning there), and the security exposure
// must stay at most unitMaxRisk.
func TestSystemdUnitVerifies(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatalf("systemd-analyze is needed to verify %s (Debian: apt-get install systemd): %v", unitFile, err)
	}
	data, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	unit := filepath.Join(t.TempDir(), "azimuth.service")
	if err := os.WriteFile(unit, []byte(strings.ReplaceAll(string(data), unitBinary, staticBinary(t))), 0o644); err != nil {
		t.Fatal(err)
	}

	out, err := exec.Command(analyze, "verify", unit).CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}

	out, err = exec.Command(analyze, "security", "--offline=yes", "--no-pager", "--threshold="+strconv.Itoa(int(unitMaxRisk*10)), unit).CombinedOutput()
	m := regexp.MustCompile(`Overall exposure level for azimuth.service: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("systemd-analyze security: %v; no exposure level in:\n%s", err, out)
	}
	risk, _ := strconv.ParseFloat(string(m[1]), 64)
	if err != nil || risk > unitMaxRisk {
		t.Errorf("exposure %.1f (want at most %.1f), %v:\n%s", risk, unitMaxRisk, err, out)
	}
	t.Logf("systemd-analyze security exposure: %.1f", risk)
}
