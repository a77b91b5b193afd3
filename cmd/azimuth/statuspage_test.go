package main

import (
	"bytes"
	"context"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/internal/testwait"
)

// obsChromium runs headless Chromium on url with extra arguments and
// returns its stdout. The test fails, never skips, without Chromium.
func obsChromium(t *testing.T, url string, args ...string) []byte {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium is needed to render the status page: install it (apt-get install -y chromium): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	all := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + t.TempDir(), "--virtual-time-budget=5000"}, args...)
	cmd := exec.CommandContext(ctx, bin, append(all, url)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, errb.String())
	}
	return out.Bytes()
}

// obsAttr returns attribute attr of the element carrying marker, such as
// data-backend="ADDR", in serialized HTML.
func obsAttr(t *testing.T, dom []byte, marker, attr string) string {
	t.Helper()
	tag := regexp.MustCompile(`<[a-z]+[^>]*` + regexp.QuoteMeta(marker) + `[^>]*>`).Find(dom)
	if tag == nil {
		t.Errorf("no element with %s in the rendered page", marker)
		return ""
	}
	m := regexp.MustCompile(regexp.QuoteMeta(attr) + `="([^"]*)"`).FindSubmatch(tag)
	if m == nil {
		t.Errorf("element %s has no %s", tag, attr)
		return ""
	}
	return string(m[1])
}

// obsText returns the text of the first element carrying marker.
func obsText(t *testing.T, dom []byte, marker string) string {
	t.Helper()
	m := regexp.MustCompile(regexp.QuoteMeta(marker) + `[^>]*>([^<]*)<`).FindSubmatch(dom)
	if m == nil {
		t.Errorf("no element with %s in the rendered page", marker)
		return ""
	}
	return string(m[1])
}

// TestObsStatusPageInChromium renders the admin page in a real browser:
// every zone and backend is drawn, a dead backend is marked down, and the
// request counters and rates are shown. A phone-sized screenshot is kept
// in the test's directory and at /tmp/azimuth-status.png.
func TestObsStatusPageInChromium(t *testing.T) {
	a := obsBackend(t, "127.0.1.1", obsNamed("a"))
	b := obsBackend(t, "127.0.2.1", obsNamed("b"))
	c := obsBackend(t, "127.0.3.1", obsNamed("c"))
	body := "pools:\n  - name: web\n" +
		"    health: { active: { path: /healthz, interval: 100ms, timeout: 100ms, rise: 1, fall: 1 } }\n" +
		"    backends:\n      - { address: " + a.addr + ", zone: a }\n      - { address: " + b.addr + ", zone: b }\n" +
		"      - { address: " + c.addr + ", zone: c }\n"
	_, admin := obsStart(t, obsConfig(t, t.TempDir(), body))
	c.close()
	testwait.Until(t, 10*time.Second, "zone c's backend down", func() bool {
		for _, be := range obsGetStatus(t, admin, "").Pools[0].Backends {
			if be.Address == c.addr {
				return be.State == "down"
			}
		}
		return false
	})
	obsProxyGet(t, obsListener(t, admin, "", "http"), 7)

	url := "http://" + admin + "/"
	dom := obsChromium(t, url, "--dump-dom")
	if obsAttr(t, dom, "data-loaded", "data-loaded") != "1" {
		t.Fatalf("the page never rendered /status:\n%s", dom)
	}
	for _, z := range []string{"a", "b", "c"} {
		obsAttr(t, dom, `data-zone="`+z+`"`, "class")
	}
	for addr, want := range map[string]string{a.addr: "up", b.addr: "up", c.addr: "down"} {
		if got := obsAttr(t, dom, `data-backend="`+addr+`"`, "data-state"); got != want {
			t.Errorf("backend %s drawn as %q, want %q", addr, got, want)
		}
	}
	if got := obsAttr(t, dom, `data-zone="c"`, "class"); got != "zone bad" {
		t.Errorf("zone c with no healthy backend has class %q, want %q", got, "zone bad")
	}
	if got := obsText(t, dom, `data-total="requests"`); got != "7" {
		t.Errorf("requests total shown as %q, want 7", got)
	}
	for _, r := range []string{"requests", "retries", "errors"} {
		if got := obsText(t, dom, `data-rate="`+r+`"`); !regexp.MustCompile(`^\d+(\.\d)?$`).MatchString(got) {
			t.Errorf("%s rate shown as %q, want a number after two refreshes", r, got)
		}
	}

	shot := filepath.Join(t.TempDir(), "status.png")
	obsChromium(t, url, "--screenshot="+shot, "--window-size=412,915", "--hide-scrollbars")
	data, err := os.ReadFile(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("screenshot is not a PNG: %v", err)
	}
	if s := img.Bounds().Size(); s.X != 412 || s.Y != 915 {
		t.Errorf("screenshot is %v, want 412x915", s)
	}
	_ = os.WriteFile("/tmp/azimuth-status.png", data, 0o644)
}
