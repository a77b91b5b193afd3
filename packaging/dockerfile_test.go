package packaging

import (
	"debug/elf"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	repoRoot    = ".."
	imageConfig = "/etc/azimuth/azimuth.yaml"
	// testVersion is passed as the VERSION build argument.
	testVersion = "v0.0.0-packaging-test"
)

// tmpRoot holds what the tests build; TestMain removes it.
var tmpRoot string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "azimuth-packaging-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	tmpRoot = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func loadDockerfile(t *testing.T) *dockerfile {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	df, err := parseDockerfile(string(data))
	if err != nil {
		t.Fatalf("parsing Dockerfile: %v", err)
	}
	if len(df.stages) == 0 {
		t.Fatal("Dockerfile has no FROM")
	}
	return df
}

func TestDockerfileParser(t *testing.T) {
	src := "# syntax=docker/dockerfile:1\nARG BASE=golang:1\nFROM ${BASE} AS build\nENV A=1 B=\"two words\"\n" +
		"RUN go build \\\n    # a comment inside\n    -ldflags \"-X main.version=${V}\" \\\n    -o /out/x ./cmd/x && echo 'a && b'; true\n" +
		"FROM scratch\nCOPY --from=build /out/ /\nCMD [\"-config\", \"/c.yaml\"]\n"
	df, err := parseDockerfile(src)
	if err != nil {
		t.Fatal(err)
	}
	if len(df.stages) != 2 || df.stages[0].base != "golang:1" || df.stages[0].name != "build" || df.stages[1].base != "scratch" {
		t.Fatalf("stages %+v %+v", df.stages[0], df.stages[1])
	}
	run, _ := df.stages[0].last("RUN")
	if run.line != 5 {
		t.Errorf("RUN at line %d, want 5", run.line)
	}
	cmds := shellCommands(run.args)
	want := [][]string{{"go", "build", "-ldflags", "-X main.version=${V}", "-o", "/out/x", "./cmd/x"}, {"echo", "a && b"}, {"true"}}
	if fmt.Sprint(cmds) != fmt.Sprint(want) || len(cmds) != len(want) {
		t.Errorf("commands %q, want %q", cmds, want)
	}
	if v := df.stages[0].vars(nil); v["A"] != "1" || v["B"] != "two words" {
		t.Errorf("env %v", v)
	}
	cmd, _ := df.stages[1].last("CMD")
	if f, ok := cmd.execForm(); !ok || !slices.Equal(f, []string{"-config", "/c.yaml"}) {
		t.Errorf("CMD exec form %q %v", f, ok)
	}
	for name, bad := range map[string]string{
		"unterminated continuation": "FROM scratch\nRUN a \\\n",
		"instruction before FROM":   "RUN true\nFROM scratch\n",
		"heredoc":                   "FROM scratch\nRUN <<EOF\nx\nEOF\n",
		"escape directive":          "# escape=`\nFROM scratch\n",
	} {
		if _, err := parseDockerfile(bad); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// TestDockerfile checks what the image promises, without an engine.
func TestDockerfile(t *testing.T) {
	df := loadDockerfile(t)
	final := df.stages[len(df.stages)-1]

	t.Run("multi-stage", func(t *testing.T) {
		if len(df.stages) < 2 {
			t.Fatalf("%d stage(s), want a build stage and a final one", len(df.stages))
		}
	})
	t.Run("minimal final base", func(t *testing.T) {
		if final.base != "scratch" && !strings.HasPrefix(final.base, "gcr.io/distroless/static") {
			t.Fatalf("final stage FROM %s, want scratch or gcr.io/distroless/static*", final.base)
		}
	})
	t.Run("non-root user", func(t *testing.T) {
		u, ok := final.last("USER")
		if !ok {
			t.Fatal("final stage has no USER: the image would run as root")
		}
		user, _, _ := strings.Cut(u.args, ":")
		if uid, err := strconv.Atoi(user); user == "root" || (err == nil && uid == 0) || (err != nil && final.base == "scratch") {
			t.Fatalf("USER %s: want a non-root user (numeric on scratch, which has no user database)", u.args)
		}
	})
	t.Run("ports", func(t *testing.T) {
		var got []string
		for _, e := range final.all("EXPOSE") {
			for _, p := range strings.Fields(e.args) {
				if !strings.Contains(p, "/") {
					p += "/tcp"
				}
				got = append(got, p)
			}
		}
		for _, want := range []string{"8080/tcp", "8443/tcp", "8443/udp", "9901/tcp"} {
			if !slices.Contains(got, want) {
				t.Errorf("EXPOSE lacks %s (has %v)", want, got)
			}
		}
	})
	t.Run("entrypoint and config", func(t *testing.T) {
		argv := imageCommand(t, final)
		if !slices.Equal(argv, []string{"/azimuth", "-config", imageConfig}) {
			t.Fatalf("ENTRYPOINT+CMD run %q, want /azimuth -config %s", argv, imageConfig)
		}
	})
	t.Run("healthcheck", func(t *testing.T) {
		argv := healthcheckCommand(t, final)
		if len(argv) < 2 || argv[0] != "/azimuth" || argv[1] != "healthcheck" {
			t.Fatalf("HEALTHCHECK runs %q, want /azimuth healthcheck ...", argv)
		}
		if !containsPair(argv, "-config", imageConfig) {
			t.Errorf("HEALTHCHECK %q does not read the image's config %s", argv, imageConfig)
		}
	})
	t.Run("binary lands at the entrypoint", func(t *testing.T) {
		_, out := goBuildCommand(t, df)
		if got := finalPath(t, df, out); got != imageCommand(t, final)[0] {
			t.Fatalf("go build -o %s lands at %s in the final image, but the entrypoint is %s", out, got, imageCommand(t, final)[0])
		}
	})
	t.Run("static build", func(t *testing.T) {
		args, _ := goBuildCommand(t, df)
		env := buildStage(t, df).vars(nil)
		if env["CGO_ENABLED"] != "0" {
			t.Errorf("the build stage does not set CGO_ENABLED=0 (ENV has %q)", env["CGO_ENABLED"])
		}
		if !slices.Contains(args, "-trimpath") {
			t.Errorf("go build %q lacks -trimpath", args)
		}
		if !slices.ContainsFunc(args, func(a string) bool { return strings.Contains(a, "-X main.version=") }) {
			t.Errorf("go build %q does not stamp main.version", args)
		}
	})
}

// imageCommand is what the container runs: ENTRYPOINT then CMD, both in
// exec form (a shell form needs /bin/sh, which the image lacks).
func imageCommand(t *testing.T, final *stage) []string {
	t.Helper()
	var argv []string
	for _, cmd := range []string{"ENTRYPOINT", "CMD"} {
		in, ok := final.last(cmd)
		if !ok {
			t.Fatalf("final stage has no %s", cmd)
		}
		f, ok := in.execForm()
		if !ok {
			t.Fatalf("line %d: %s %s is not in exec form", in.line, cmd, in.args)
		}
		argv = append(argv, f...)
	}
	return argv
}

// healthcheckCommand is HEALTHCHECK's CMD, which must be in exec form.
func healthcheckCommand(t *testing.T, final *stage) []string {
	t.Helper()
	in, ok := final.last("HEALTHCHECK")
	if !ok {
		t.Fatal("final stage has no HEALTHCHECK")
	}
	_, rest := in.flagsAndRest()
	body, ok := strings.CutPrefix(rest, "CMD ")
	if !ok {
		t.Fatalf("line %d: HEALTHCHECK %s: want CMD [...]", in.line, in.args)
	}
	argv, ok := instruction{args: body}.execForm()
	if !ok {
		t.Fatalf("line %d: HEALTHCHECK CMD %s is not in exec form; the image has no shell", in.line, body)
	}
	return argv
}

func containsPair(argv []string, k, v string) bool {
	for i := 0; i+1 < len(argv); i++ {
		if argv[i] == k && argv[i+1] == v {
			return true
		}
	}
	return false
}

// buildStage is the stage the final one copies the binary from.
func buildStage(t *testing.T, df *dockerfile) *stage {
	t.Helper()
	for _, c := range df.stages[len(df.stages)-1].all("COPY") {
		flags, _ := c.flagsAndRest()
		if st, ok := df.stageNamed(flags["from"]); ok && slices.ContainsFunc(st.all("RUN"), isGoBuild) {
			return st
		}
	}
	t.Fatal("the final stage copies from no stage that runs go build")
	return nil
}

func isGoBuild(in instruction) bool {
	return slices.ContainsFunc(shellCommands(in.args), func(c []string) bool {
		return len(c) >= 2 && c[0] == "go" && c[1] == "build"
	})
}

// goBuildCommand is the build stage's go build, variables expanded with
// VERSION=testVersion, without "go build": its flags and package, and
// the -o path.
func goBuildCommand(t *testing.T, df *dockerfile) (args []string, out string) {
	t.Helper()
	st := buildStage(t, df)
	vars := st.vars(map[string]string{"VERSION": testVersion})
	for _, in := range st.all("RUN") {
		for _, c := range shellCommands(in.args) {
			if len(c) < 2 || c[0] != "go" || c[1] != "build" {
				continue
			}
			for _, w := range c[2:] {
				args = append(args, os.Expand(w, func(n string) string { return vars[n] }))
			}
			if i := slices.Index(args, "-o"); i >= 0 && i+1 < len(args) {
				return args, args[i+1]
			}
			t.Fatalf("line %d: go build without -o", in.line)
		}
	}
	t.Fatal("no go build in the build stage")
	return nil, ""
}

// finalPath follows the final stage's COPY --from of the build stage to
// where the file built at out lands.
func finalPath(t *testing.T, df *dockerfile, out string) string {
	t.Helper()
	build := buildStage(t, df)
	for _, c := range df.stages[len(df.stages)-1].all("COPY") {
		flags, rest := c.flagsAndRest()
		if st, _ := df.stageNamed(flags["from"]); st != build {
			continue
		}
		f := strings.Fields(rest)
		dst := f[len(f)-1]
		for _, src := range f[:len(f)-1] {
			switch {
			case src == out && strings.HasSuffix(dst, "/"):
				return path.Join(dst, path.Base(out))
			case src == out:
				return dst
			case strings.HasSuffix(src, "/") && strings.HasPrefix(out, src):
				return path.Join(dst, strings.TrimPrefix(out, src))
			}
		}
	}
	t.Fatalf("the final stage does not copy %s from the build stage", out)
	return ""
}

var (
	staticOnce sync.Once
	staticBin  string
	staticErr  error
)

// staticBinary runs the Dockerfile's go build, as the build stage would
// (its ENV, its flags, VERSION=testVersion), writing the binary under
// tmpRoot instead of the -o path. It builds once per test binary.
func staticBinary(t *testing.T) string {
	t.Helper()
	df := loadDockerfile(t)
	args, out := goBuildCommand(t, df)
	env := buildStage(t, df).vars(map[string]string{"VERSION": testVersion})
	staticOnce.Do(func() {
		staticBin = filepath.Join(tmpRoot, "bin", "azimuth")
		args[slices.Index(args, out)] = staticBin
		cmd := exec.Command("go", append([]string{"build"}, args...)...)
		cmd.Dir = repoRoot
		cmd.Env = os.Environ()
		for _, k := range []string{"CGO_ENABLED", "GOFLAGS"} {
			if v, ok := env[k]; ok {
				cmd.Env = append(cmd.Env, k+"="+v)
			}
		}
		if b, err := cmd.CombinedOutput(); err != nil {
			staticErr = fmt.Errorf("go build %s: %w\n%s", strings.Join(args, " "), err, b)
		}
	})
	if staticErr != nil {
		t.Fatal(staticErr)
	}
	return staticBin
}

// TestDockerfileBuildIsStatic runs the Dockerfile's build command and
// checks that the binary needs nothing from the (empty) final image: no
// program interpreter, no dynamic section, no shared libraries.
func TestDockerfileBuildIsStatic(t *testing.T) {
	bin := staticBinary(t)
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("program header %v: the binary is dynamically linked", p.Type)
		}
	}
	if s := f.Section(".dynamic"); s != nil {
		t.Error("the binary has a .dynamic section")
	}
	libs, err := f.ImportedLibraries()
	if err != nil && !errors.Is(err, elf.ErrNoSymbols) {
		t.Fatal(err)
	}
	if len(libs) > 0 {
		t.Errorf("the binary needs shared libraries %v", libs)
	}

	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatalf("azimuth version: %v", err)
	}
	if !strings.HasPrefix(string(out), "azimuth "+testVersion+"\n") {
		t.Errorf("azimuth version printed %q; want the VERSION build argument %s", out, testVersion)
	}
	if strings.Contains(string(out), "revision: unknown") {
		t.Errorf("azimuth version printed %q; want the VCS revision (-buildvcs)", out)
	}
}

// TestDockerfileImageCommand runs the built binary the way the image
// does: ENTRYPOINT+CMD with the config at the image's path mapped to a
// temporary file, as the image's USER when the test may switch users, and
// then the HEALTHCHECK command against it.
func TestDockerfileImageCommand(t *testing.T) {
	df := loadDockerfile(t)
	final := df.stages[len(df.stages)-1]
	bin := staticBinary(t)

	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	defer backend.Close()
	dir, err := os.MkdirTemp(tmpRoot, "etc-azimuth-")
	if err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(dir, "azimuth.yaml")
	cfg := fmt.Sprintf("admin: { address: 127.0.0.1:0 }\nshutdown: { grace: 1s, drain_delay: 100ms }\n"+
		"listeners:\n  - { name: http, address: 127.0.0.1:0, routes: [ { pool: web } ] }\n"+
		"pools:\n  - { name: web, backends: [ { address: %s } ] }\n", backend.Listener.Addr())
	if err := os.WriteFile(config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	// The image's user must be able to reach the binary and the config.
	for _, d := range []string{tmpRoot, filepath.Dir(bin), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mapArgs := func(argv []string) []string {
		out := slices.Clone(argv[1:])
		for i, a := range out {
			if a == imageConfig {
				out[i] = config
			}
		}
		return out
	}

	cmd := exec.Command(bin, mapArgs(imageCommand(t, final))...)
	if os.Geteuid() == 0 {
		u, _ := final.last("USER")
		uid, gid := imageIDs(t, u.args)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid}}
	}
	logs := &lockedBuffer{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Kill()
		<-exited
	}()
	admin := waitAdmin(t, logs, exited)

	// HEALTHCHECK's own arguments, with the address the admin bound
	// (port 0 in the test config) added, since -admin wins over -config.
	hc := append(mapArgs(healthcheckCommand(t, final)), "-admin", admin)
	out, err := exec.Command(bin, hc...).CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "ok: GET http://"+admin+"/healthz: 200 OK") {
		t.Fatalf("HEALTHCHECK %q: %v\n%s", hc, err, out)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		exited <- err // for the deferred cleanup
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, logs)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("no exit after SIGTERM\n%s", logs)
	}
}

// imageIDs reads USER uid[:gid], numeric as scratch requires.
func imageIDs(t *testing.T, user string) (uint32, uint32) {
	t.Helper()
	u, g, hasGroup := strings.Cut(user, ":")
	uid, err := strconv.ParseUint(u, 10, 32)
	if err != nil {
		t.Fatalf("USER %s: not numeric", user)
	}
	gid := uid
	if hasGroup {
		if gid, err = strconv.ParseUint(g, 10, 32); err != nil {
			t.Fatalf("USER %s: group not numeric", user)
		}
	}
	return uint32(uid), uint32(gid)
}

// waitAdmin polls the process's logs for the admin's bound address.
func waitAdmin(t *testing.T, logs *lockedBuffer, exited chan error) string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		for _, line := range strings.Split(logs.String(), "\n") {
			if strings.Contains(line, `"msg":"admin listening"`) {
				_, rest, _ := strings.Cut(line, `"address":"`)
				addr, _, _ := strings.Cut(rest, `"`)
				if _, _, err := net.SplitHostPort(addr); err == nil {
					return addr
				}
			}
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("azimuth exited (%v) before its admin listened:\n%s", err, logs)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no admin address logged:\n%s", logs)
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
}

// lockedBuffer collects a process's output while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
