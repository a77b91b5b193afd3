package scenario

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// process is a running azimuth.
type process struct {
	cmd    *exec.Cmd
	admin  string
	log    *os.File
	exited chan struct{}
	err    error // the exit status, once exited is closed
}

// startAzimuth starts `binary -config config` with its output in logPath.
func startAzimuth(binary, config, admin, logPath string) (*process, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("creating azimuth log: %w", err)
	}
	cmd := exec.Command(binary, "-config", config)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting azimuth %s: %w", binary, err)
	}
	p := &process{cmd: cmd, admin: admin, log: logf, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// waitReady polls the admin /readyz (or /healthz, for an azimuth without
// readiness) until it answers 200, the process exits, or ctx ends.
func (p *process) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	path := "/readyz"
	last := "no answer yet"
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, err := client.Get("http://" + p.admin + path)
		if err == nil {
			resp.Body.Close()
			switch {
			case resp.StatusCode == http.StatusOK:
				return nil
			case resp.StatusCode == http.StatusNotFound && path == "/readyz":
				path = "/healthz"
			}
			last = fmt.Sprintf("%s answered %d", path, resp.StatusCode)
		} else {
			last = err.Error()
		}
		select {
		case <-p.exited:
			return fmt.Errorf("azimuth exited before it was ready (%v); its log:\n%s", p.err, p.tail())
		case <-ctx.Done():
			return fmt.Errorf("waiting for azimuth to be ready on %s: %s: %w; its log:\n%s", p.admin, last, ctx.Err(), p.tail())
		case <-tick.C:
		}
	}
}

// waitServing sends GETs to url until one is answered 200, so the load
// starts once the proxy really reaches its backends (an azimuth without
// /readyz is "ready" as soon as its admin answers).
func (p *process) waitServing(ctx context.Context, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{
		// The listener's certificate is the runner's own, self-signed.
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // loopback, our own certificate
	}}
	defer client.CloseIdleConnections()
	last := "no answer yet"
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, err := client.Get(url)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("answered %d", resp.StatusCode)
		} else {
			last = err.Error()
		}
		select {
		case <-p.exited:
			return fmt.Errorf("azimuth exited before serving (%v); its log:\n%s", p.err, p.tail())
		case <-ctx.Done():
			return fmt.Errorf("waiting for azimuth to serve %s: %s: %w; its log:\n%s", url, last, ctx.Err(), p.tail())
		case <-tick.C:
		}
	}
}

// stop sends SIGTERM and waits for the drain, then kills after grace.
func (p *process) stop(grace time.Duration) error {
	defer p.log.Close()
	select {
	case <-p.exited:
		return fmt.Errorf("azimuth exited during the run (%v); its log:\n%s", p.err, p.tail())
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("sending SIGTERM to azimuth: %w", err)
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.exited:
		if p.err != nil {
			return fmt.Errorf("azimuth exit after SIGTERM: %w", p.err)
		}
		return nil
	case <-t.C:
		_ = p.cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("azimuth did not exit within %v of SIGTERM; killed", grace)
	}
}

// tail returns the end of the azimuth log, for error messages.
func (p *process) tail() string {
	data, err := os.ReadFile(p.log.Name())
	if err != nil {
		return "(log unreadable: " + err.Error() + ")"
	}
	const max = 4000
	if len(data) > max {
		data = data[len(data)-max:]
	}
	return string(data)
}
