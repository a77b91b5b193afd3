package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binary is the azimuth executable built once for all tests, so they run
// it as operators do: a real process with real arguments and signals.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "azimuth-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "azimuth")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building azimuth:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is a finished process's exit code and output.
type result struct {
	code           int
	stdout, stderr string
}

// azimuth runs the binary to completion, bounded in time.
func azimuth(t *testing.T, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Env = append(os.Environ(), "AZIMUTH_ZONE=")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("azimuth %v did not finish", args)
	}
	return result{code: cmd.ProcessState.ExitCode(), stdout: out.String(), stderr: errb.String()}
}

var (
	fullExample    = filepath.Join("..", "..", "configs", "azimuth.yaml")
	minimalExample = filepath.Join("..", "..", "configs", "minimal.yaml")
)

// copyExample copies the full example and its TLS files into a fresh
// directory, applying edit to the YAML, and returns the copy's path.
func copyExample(t *testing.T, edit func(string) string) string {
	t.Helper()
	dir := t.TempDir()
	data, err := os.ReadFile(fullExample)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(filepath.Join(dir, "example-tls"), os.DirFS(filepath.Join("..", "..", "configs", "example-tls"))); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "azimuth.yaml")
	if err := os.WriteFile(path, []byte(edit(string(data))), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// lineOf returns the 1-based line of the first occurrence of s in data.
func lineOf(t *testing.T, data, s string) int {
	t.Helper()
	i := strings.Index(data, s)
	if i < 0 {
		t.Fatalf("%q not in file", s)
	}
	return strings.Count(data[:i], "\n") + 1
}

func TestValidateExamples(t *testing.T) {
	r := azimuth(t, "validate", fullExample, minimalExample)
	if r.code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", r.code, r.stderr)
	}
	want := fullExample + ": ok\n" + minimalExample + ": ok\n"
	if r.stdout != want || r.stderr != "" {
		t.Fatalf("stdout %q stderr %q, want %q", r.stdout, r.stderr, want)
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	var edited string
	bad := copyExample(t, func(s string) string {
		s = strings.Replace(s, "per_try: auto", "pertry: auto", 1)
		s = strings.Replace(s, "attempts: 3 ", "attempts: 0 ", 1)
		edited = s
		return s
	})
	r := azimuth(t, "validate", minimalExample, bad)
	if r.code != 1 {
		t.Fatalf("exit %d, want 1; stderr:\n%s", r.code, r.stderr)
	}
	if r.stdout != minimalExample+": ok\n" {
		t.Errorf("stdout %q: the good file must still be reported ok", r.stdout)
	}
	for _, want := range []string{
		fmt.Sprintf("%s:%d: pools[0].timeouts.pertry: unknown key (did you mean per_try?)\n", bad, lineOf(t, edited, "pertry")),
		fmt.Sprintf("%s:%d: pools[0].retry.attempts: 0 is outside 1..10", bad, lineOf(t, edited, "attempts: 0")),
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
}

func TestValidateUsageAndUnreadable(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		code     int
		inStderr string
	}{
		{"no files", []string{"validate"}, 2, "Usage: azimuth validate FILE..."},
		{"missing file", []string{"validate", "/nonexistent/azimuth.yaml"}, 1, "/nonexistent/azimuth.yaml: reading config: open /nonexistent/azimuth.yaml: no such file or directory"},
		{"unknown flag", []string{"validate", "-x", minimalExample}, 2, "flag provided but not defined: -x"},
		{"help", []string{"validate", "-h"}, 0, "Exits 0 if all files are"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := azimuth(t, tt.args...)
			if r.code != tt.code || !strings.Contains(r.stderr, tt.inStderr) {
				t.Fatalf("exit %d (want %d), stderr:\n%s\nwant it to contain %q", r.code, tt.code, r.stderr, tt.inStderr)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	r := azimuth(t, "version")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	for _, want := range []string{"azimuth ", "revision: ", "built:    ", "go:       go1."} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("version output lacks %q:\n%s", want, r.stdout)
		}
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"help"}} {
		r := azimuth(t, args...)
		out := r.stdout + r.stderr
		if r.code != 0 || !strings.Contains(out, "-config file") || !strings.Contains(out, "azimuth validate FILE...") || !strings.Contains(out, "azimuth version") {
			t.Errorf("azimuth %v: exit %d, output:\n%s", args, r.code, out)
		}
	}
	if r := azimuth(t, "frobnicate"); r.code != 2 || !strings.Contains(r.stderr, `unknown command "frobnicate"`) {
		t.Errorf("unknown command: exit %d, stderr %s", r.code, r.stderr)
	}
}

func TestRunWithBadConfigFails(t *testing.T) {
	var edited string
	bad := copyExample(t, func(s string) string {
		edited = strings.Replace(s, "spill_below: 0.7", "spill_below: 7", 1)
		return edited
	})
	r := azimuth(t, "-config", bad)
	want := fmt.Sprintf("%s:%d: pools[0].zones.spill_below: 7 is outside 0..1", bad, lineOf(t, edited, "spill_below: 7"))
	if r.code != 1 || !strings.Contains(r.stderr, want) {
		t.Fatalf("exit %d, stderr:\n%s\nwant it to contain %q", r.code, r.stderr, want)
	}
	if r := azimuth(t, "-config", filepath.Join(t.TempDir(), "none.yaml")); r.code != 1 || !strings.Contains(r.stderr, "no such file") {
		t.Fatalf("missing config: exit %d, stderr %s", r.code, r.stderr)
	}
}

// process is a running azimuth whose JSON log lines are collected.
type process struct {
	cmd  *exec.Cmd
	done chan struct{}

	mu   sync.Mutex
	logs []map[string]any
}

// start runs the binary on config, with env added to the environment.
func start(t *testing.T, config string, env ...string) *process {
	t.Helper()
	return startEnv(t, config, append(os.Environ(), env...))
}

// startWithout starts the binary with the test's environment less the
// variables named.
func startWithout(t *testing.T, config string, names ...string) *process {
	t.Helper()
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		name, _, _ := strings.Cut(kv, "=")
		return slices.Contains(names, name)
	})
	return startEnv(t, config, env)
}

// startEnv starts the binary with exactly env.
func startEnv(t *testing.T, config string, env []string) *process {
	t.Helper()
	cmd := exec.Command(binary, "-config", config)
	cmd.Env = env
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) != nil {
				m = map[string]any{"raw": sc.Text()}
			}
			p.mu.Lock()
			p.logs = append(p.logs, m)
			p.mu.Unlock()
		}
		cmd.Wait()
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// waitLog polls for a log line whose msg is msg and returns it.
func (p *process) waitLog(t *testing.T, msg string, match func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		p.mu.Lock()
		for _, l := range p.logs {
			if l["msg"] == msg && (match == nil || match(l)) {
				p.mu.Unlock()
				return l
			}
		}
		all := fmt.Sprint(p.logs)
		p.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("no log %q; logs: %s", msg, all)
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
}

func (p *process) exitCode(t *testing.T) int {
	t.Helper()
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(15 * time.Second):
		// Its last log lines say which step of the drain it was in.
		p.mu.Lock()
		last := p.logs[max(0, len(p.logs)-15):]
		msgs := make([]string, 0, len(last))
		for _, l := range last {
			msgs = append(msgs, fmt.Sprint(l))
		}
		p.mu.Unlock()
		t.Fatalf("azimuth did not exit within 15s; its last log lines:\n%s", strings.Join(msgs, "\n"))
		return -1
	}
}

func writeRunConfig(t *testing.T, dir string) string {
	t.Helper()
	data, err := os.ReadFile(minimalExample)
	if err != nil {
		t.Fatal(err)
	}
	cfg := "admin: { address: 127.0.0.1:0 }\nshutdown: { grace: 5s, drain_delay: 100ms }\n" +
		strings.ReplaceAll(string(data), "127.0.0.1:8080", "127.0.0.1:0")
	path := filepath.Join(dir, "azimuth.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func getHealthz(t *testing.T, addr string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "ok\n" {
		t.Fatalf("/healthz = %d %q", resp.StatusCode, body)
	}
}

func TestRunServesHealthzAndStopsOnSignal(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			p := start(t, writeRunConfig(t, t.TempDir()))
			addr := p.waitLog(t, "admin listening", nil)["address"].(string)
			getHealthz(t, addr)
			if err := p.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			if code := p.exitCode(t); code != 0 {
				t.Fatalf("exit %d after %v", code, sig)
			}
			p.waitLog(t, "stopped", nil)
			if _, err := http.Get("http://" + addr + "/healthz"); err == nil {
				t.Fatal("admin still answers after exit")
			}
		})
	}
}

func TestSIGHUPChecksConfigAndKeepsRunning(t *testing.T) {
	dir := t.TempDir()
	path := writeRunConfig(t, dir)
	p := start(t, path)
	addr := p.waitLog(t, "admin listening", nil)["address"].(string)

	if err := os.WriteFile(path, []byte("listeners:\n  - name: http\n    adress: x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	rejected := p.waitLog(t, "config reload rejected", func(l map[string]any) bool {
		return l["key"] == "listeners[0].adress"
	})
	if rejected["line"] != float64(3) || rejected["file"] != path {
		t.Errorf("rejected reload logged as %v; want file %s line 3", rejected, path)
	}
	getHealthz(t, addr) // still serving on the old config

	writeRunConfig(t, dir)
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	p.waitLog(t, "config reloaded", nil)
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.exitCode(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
}
