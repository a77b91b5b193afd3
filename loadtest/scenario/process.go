package scenario

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
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

// scrapeRetries reads azimuth_retries_total from the admin /metrics and sums it
// by cause. ok is false when the metrics cannot be read or azimuth does
// not export the series.
func scrapeRetries(admin string) (byCause map[string]float64, ok bool) {
	client := &http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get("http://" + admin + "/metrics")
	if err != nil {
		return nil, false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, false
	}
	return parseRetries(resp.Body)
}

// parseRetries reads Prometheus text exposition and sums the
// azimuth_retries_total series by their cause label.
func parseRetries(r io.Reader) (map[string]float64, bool) {
	out := map[string]float64{}
	found := false
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "# TYPE azimuth_retries_total ") {
			found = true
			continue
		}
		if !strings.HasPrefix(line, "azimuth_retries_total") {
			continue
		}
		rest := strings.TrimPrefix(line, "azimuth_retries_total")
		labels := ""
		if strings.HasPrefix(rest, "{") {
			end := strings.Index(rest, "}")
			if end < 0 {
				continue
			}
			labels, rest = rest[1:end], rest[end+1:]
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			continue
		}
		found = true
		cause := labelValue(labels, "cause")
		if cause == "" {
			cause = "unknown"
		}
		out[cause] += v
	}
	if errors.Is(sc.Err(), bufio.ErrTooLong) || !found {
		return nil, false
	}
	return out, true
}

func labelValue(labels, name string) string {
	for _, kv := range strings.Split(labels, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if ok && strings.TrimSpace(k) == name {
			return strings.Trim(strings.TrimSpace(v), `"`)
		}
	}
	return ""
}
