// Package consultest starts a real Consul agent (consul agent -dev) on
// loopback for tests, on free ports, with a temporary data directory, and
// stops it when the test ends. Tests that need Consul fail, never skip,
// when the binary is missing: build it with tools/consul/build.sh.
package consultest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

// Timeouts for the agent's life cycle.
const (
	startTimeout = 60 * time.Second
	stopTimeout  = 10 * time.Second
)

// agents numbers the agents of this process, for unique node names.
var agents atomic.Int64

// Agent is one running (or stopped) consul dev agent.
type Agent struct {
	t      testing.TB
	bin    string
	node   string
	dir    string
	ports  ports
	client *api.Client

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
	out  *lockedBuffer
	runs int

	tls        *TLSFiles // nil unless started with TLS
	token      string    // management token when ACLs are on
	persistent bool      // a server keeping its data across Restart
}

// Options choose how Start runs the agent.
type Options struct {
	// TLS also serves the HTTP API over HTTPS (HTTPSAddr) with generated
	// certificates, requiring a client certificate signed by the same CA.
	TLS bool
	// ACLToken enables ACLs with default policy deny and this token as the
	// initial management token; Client uses it.
	ACLToken string
	// Persistent runs a single server agent that keeps its state on disk
	// instead of a -dev one: Restart brings it back with the same catalog
	// and a Raft index that goes on, as a real agent after a restart.
	Persistent bool
}

// ports are the agent's listening ports, kept across Restart.
type ports struct {
	http, server, serfLAN, serfWAN, https int
}

// Start starts an agent and waits until it has a leader and its node is in
// the catalog. The agent stops when the test ends.
func Start(t testing.TB) *Agent {
	t.Helper()
	return StartWith(t, Options{})
}

// StartWith is Start with options.
func StartWith(t testing.TB, o Options) *Agent {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		t.Fatalf("starting consul agent: %v", err)
	}
	a := &Agent{
		t:          t,
		bin:        bin,
		node:       fmt.Sprintf("azimuth-test-%d-%d", os.Getpid(), agents.Add(1)),
		dir:        t.TempDir(),
		token:      o.ACLToken,
		persistent: o.Persistent,
	}
	if o.TLS {
		files, err := generateTLS(a.dir)
		if err != nil {
			t.Fatalf("starting consul agent: %v", err)
		}
		a.tls = &files
	}
	t.Cleanup(func() {
		a.Stop()
		if t.Failed() {
			t.Logf("consul agent output:\n%s", a.Output())
		}
	})
	// A port picked free can be taken before the agent binds it; try again
	// with fresh ports rather than fail the test on a race with a stranger.
	var lastErr error
	for range 3 {
		a.ports, err = freePorts()
		if err != nil {
			t.Fatalf("starting consul agent: %v", err)
		}
		cfg := api.DefaultNonPooledConfig()
		cfg.Address = a.Addr()
		cfg.Token = a.token
		if a.client, err = api.NewClient(cfg); err != nil {
			t.Fatalf("starting consul agent: creating client: %v", err)
		}
		if lastErr = a.start(); lastErr == nil {
			return a
		}
		a.Stop()
	}
	t.Fatalf("starting consul agent: %v", lastErr)
	return nil
}

// Addr is the agent's HTTP API address, 127.0.0.1:port.
func (a *Agent) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(a.ports.http))
}

// HTTPSAddr is the agent's HTTPS API address, 127.0.0.1:port; only
// served when started with Options.TLS.
func (a *Agent) HTTPSAddr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(a.ports.https))
}

// TLS returns the certificate files of an agent started with Options.TLS,
// or nil.
func (a *Agent) TLS() *TLSFiles { return a.tls }

// Client is an API client for the agent (plain HTTP).
func (a *Agent) Client() *api.Client { return a.client }

// Node is the agent's node name, for catalog registrations on it.
func (a *Agent) Node() string { return a.node }

// Output returns what the agent has printed so far, for failure messages.
func (a *Agent) Output() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.out == nil {
		return ""
	}
	return a.out.String()
}

// Restart stops the agent and starts it again on the same ports. A dev
// agent keeps its state in memory, so everything registered is gone and
// the Raft index starts low again, as after a server rebuild; a
// Persistent one comes back with its catalog and index.
func (a *Agent) Restart() {
	a.t.Helper()
	a.Stop()
	if err := a.start(); err != nil {
		a.t.Fatalf("restarting consul agent: %v", err)
	}
}

// Stop sends SIGTERM, kills the agent if it has not exited within 10s,
// and waits for it. Stopping a stopped agent does nothing.
func (a *Agent) Stop() {
	a.mu.Lock()
	cmd, done := a.cmd, a.done
	a.cmd = nil
	a.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(stopTimeout):
		_ = cmd.Process.Kill()
		<-done
	}
}

// start launches the process on a.ports and waits until it is ready.
func (a *Agent) start() error {
	a.runs++
	mode, data := []string{"-dev"}, filepath.Join(a.dir, fmt.Sprintf("data-%d", a.runs))
	if a.persistent {
		// raft_multiplier 1: the fast timings of a single server on
		// one machine, as -dev uses; 5, the default, makes each start
		// wait seconds for an election.
		mode = []string{"-server", "-bootstrap-expect", "1", "-ui=false", "-hcl", "performance { raft_multiplier = 1 }"}
		data = filepath.Join(a.dir, "data")
	}
	args := append([]string{"agent"}, mode...)
	args = append(args,
		"-node", a.node,
		"-bind", "127.0.0.1",
		"-advertise", "127.0.0.1",
		"-client", "127.0.0.1",
		"-http-port", strconv.Itoa(a.ports.http),
		"-server-port", strconv.Itoa(a.ports.server),
		"-serf-lan-port", strconv.Itoa(a.ports.serfLAN),
		"-serf-wan-port", strconv.Itoa(a.ports.serfWAN),
		"-dns-port", "-1",
		"-grpc-port", "-1",
		"-grpc-tls-port", "-1",
		"-data-dir", data,
		"-log-level", "warn",
	)
	if a.token != "" {
		args = append(args, "-hcl", fmt.Sprintf(
			`acl { enabled = true default_policy = "deny" enable_token_persistence = false tokens { initial_management = %q agent = %q } }`,
			a.token, a.token))
	}
	if a.tls != nil {
		args = append(args,
			"-hcl", fmt.Sprintf("ports { https = %d }", a.ports.https),
			"-hcl", fmt.Sprintf(`tls { https { ca_file = %q cert_file = %q key_file = %q verify_incoming = true } }`,
				a.tls.CAFile, a.tls.ServerCertFile, a.tls.ServerKeyFile),
		)
	}
	out := &lockedBuffer{}
	cmd := exec.Command(a.bin, args...)
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.Env = agentEnv()
	setParentDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("running %s: %w", a.bin, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	a.mu.Lock()
	a.cmd, a.done, a.out = cmd, done, out
	a.mu.Unlock()

	if err := a.waitReady(done); err != nil {
		return fmt.Errorf("%w\nconsul output:\n%s", err, out.String())
	}
	return nil
}

// waitReady polls until the agent has a leader and its own node is in the
// catalog (so services registered through it sync at once).
func (a *Agent) waitReady(done <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	hc := &http.Client{Timeout: 2 * time.Second}
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		if leaderAndNode(ctx, hc, a.Addr(), a.node, a.token) {
			return nil
		}
		select {
		case <-done:
			return errors.New("consul agent exited during start-up")
		case <-ctx.Done():
			return fmt.Errorf("consul agent on %s had no leader within %v", a.Addr(), startTimeout)
		case <-tick.C:
		}
	}
}

// leaderAndNode reports whether /v1/status/leader names a leader and
// /v1/catalog/node/<node> knows the node.
func leaderAndNode(ctx context.Context, hc *http.Client, addr, node, token string) bool {
	body, ok := get(ctx, hc, "http://"+addr+"/v1/status/leader", token)
	if !ok || len(bytes.Trim(bytes.TrimSpace(body), `"`)) == 0 {
		return false
	}
	body, ok = get(ctx, hc, "http://"+addr+"/v1/catalog/node/"+node, token)
	return ok && !bytes.Equal(bytes.TrimSpace(body), []byte("null"))
}

// get fetches url with the ACL token, if any, and returns the body of a
// 200 answer.
func get(ctx context.Context, hc *http.Client, url, token string) ([]byte, bool) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, false
	}
	if token != "" {
		req.Header.Set("X-Consul-Token", token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, false
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, err = buf.ReadFrom(resp.Body)
	return buf.Bytes(), err == nil && resp.StatusCode == http.StatusOK
}

// agentEnv is the test process's environment without CONSUL_* variables,
// so an operator's settings cannot leak into the agent.
func agentEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if len(kv) >= 7 && kv[:7] == "CONSUL_" {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// lockedBuffer is a bytes.Buffer safe for the process's writers and a
// reader in the test.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
