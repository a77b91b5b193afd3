package scenario

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"sync"
	"time"
)

// ProbeResult is what one probe got.
type ProbeResult struct {
	AtSeconds float64 `json:"at_s"` // when it was sent, from the start of the load
	Method    string  `json:"method"`
	Path      string  `json:"path"`
	// Status is the response's status, 0 when there was none.
	Status    int     `json:"status"`
	LatencyMS float64 `json:"latency_ms"` // from send to the last body byte
	Backend   string  `json:"backend,omitempty"`
	Zone      string  `json:"zone,omitempty"`
	Error     string  `json:"error,omitempty"`
}

// playProbes sends each probe at its offset from start through base (the
// proxy's listener URL, no path), each on its own connection so it queues
// behind nothing. It stops sending when sched ends (the load is over) and
// returns once every probe sent has finished; a probe is bounded by
// timeout and by ctx.
func playProbes(ctx, sched context.Context, base string, probes []Probe, start time.Time, timeout time.Duration) []ProbeResult {
	if len(probes) == 0 {
		return nil
	}
	order := make([]Probe, len(probes))
	copy(order, probes)
	sortProbes(order)
	tr := &http.Transport{
		// The listener's certificate is the runner's own, self-signed.
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // loopback, our own certificate
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: timeout}
	out := make([]ProbeResult, len(order)) // each probe's goroutine writes its own
	n := 0
	var sent sync.WaitGroup
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for i, p := range order {
		if wait := time.Until(start.Add(p.At)); wait > 0 {
			t.Reset(wait)
			select {
			case <-sched.Done():
				sent.Wait()
				return out[:n]
			case <-t.C:
			}
		}
		n = i + 1
		sent.Go(func() { out[i] = probe(ctx, client, base, p, start) })
	}
	sent.Wait()
	return out[:n]
}

func probe(ctx context.Context, client *http.Client, base string, p Probe, start time.Time) ProbeResult {
	r := ProbeResult{Method: p.Method, Path: p.Path}
	sentAt := time.Now()
	r.AtSeconds = sentAt.Sub(start).Seconds()
	req, err := http.NewRequestWithContext(ctx, p.Method, base+p.Path, nil)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	resp, err := client.Do(req)
	if err == nil {
		r.Status = resp.StatusCode
		r.Backend, r.Zone = resp.Header.Get("X-Backend"), resp.Header.Get("X-Backend-Zone")
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	r.LatencyMS = float64(time.Since(sentAt)) / float64(time.Millisecond)
	if err != nil {
		r.Error = err.Error()
	}
	return r
}
