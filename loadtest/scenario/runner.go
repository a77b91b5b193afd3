package scenario

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/azimuthproxy/azimuth/loadtest"
	"github.com/azimuthproxy/azimuth/loadtest/fleet"
)

// RunOptions are the runner's settings that do not belong in a scenario
// file.
type RunOptions struct {
	// Binary overrides the scenario's azimuth binary.
	Binary string
	// WorkDir receives the azimuth config and logs; a temporary directory
	// (removed afterwards) when empty.
	WorkDir string
	// Progress receives the load's running figures once a second.
	Progress func(loadtest.Progress)
	// Log receives one line per step (fleet up, azimuth ready, each fault).
	Log io.Writer
	// ReadyTimeout bounds the wait for azimuth's readiness; 20s by default.
	ReadyTimeout time.Duration
}

// Applied is one fault as it was applied during the run.
type Applied struct {
	Event
	// Offset is when it was applied, from the start of the load.
	Offset time.Duration
	Err    error
}

// Run plays the scenario: fleet, azimuth, load with faults, probes and
// /status polls beside it, azimuth's metrics, then SIGTERM. A fault that
// fails to apply is reported, not fatal; a fleet or azimuth that cannot
// start is an error. An empty azimuth zone becomes the fleet's first.
func Run(ctx context.Context, sc *Scenario, ro RunOptions) (*Report, error) {
	binary := sc.Azimuth.Binary
	if ro.Binary != "" {
		binary = ro.Binary
	}
	if binary == "" {
		return nil, errors.New("no azimuth binary: set azimuth.binary in the scenario or pass one")
	}
	if _, err := os.Stat(binary); err != nil {
		return nil, fmt.Errorf("azimuth binary: %w", err)
	}
	if ro.Log == nil {
		ro.Log = io.Discard
	}
	if ro.ReadyTimeout == 0 {
		ro.ReadyTimeout = 20 * time.Second
	}
	dir := ro.WorkDir
	if dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("creating work dir: %w", err)
		}
	} else {
		tmp, err := os.MkdirTemp("", "azload-")
		if err != nil {
			return nil, fmt.Errorf("creating work dir: %w", err)
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}

	if sc.Azimuth.Zone == "" && len(sc.Fleet.Zones) > 0 {
		sc.Azimuth.Zone = sc.Fleet.Zones[0]
	}
	idHeader := sc.Load.EffectiveIDHeader()
	fl, err := fleet.Start(fleet.Options{Zones: sc.Fleet.Zones, PerZone: sc.Fleet.PerZone, Latency: sc.Fleet.Latency, Seed: sc.Fleet.Seed, IDHeader: idHeader})
	if err != nil {
		return nil, err
	}
	defer fl.Close()
	fmt.Fprintf(ro.Log, "fleet: %d zones × %d backends on 127.0.1-%d.x\n", len(sc.Fleet.Zones), sc.Fleet.PerZone, len(sc.Fleet.Zones))

	addrs, err := freeAddrs(2)
	if err != nil {
		return nil, err
	}
	listen, admin := addrs[0], addrs[1]
	cfgPath := filepath.Join(dir, "azimuth.yaml")
	lis := Listener{Address: listen}
	scheme := "http"
	if sc.Load.TLS || sc.Load.Protocol == loadtest.H3 {
		if lis.CertFile, lis.KeyFile, err = writeSelfSigned(dir); err != nil {
			return nil, err
		}
		lis.HTTP3 = sc.Load.Protocol == loadtest.H3
		scheme = "https"
	}
	cfg := ConfigYAML(sc.Azimuth, lis, admin, filepath.Join(dir, "access.log"), Endpoints(fl))
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return nil, fmt.Errorf("writing azimuth config: %w", err)
	}
	proc, err := startAzimuth(binary, cfgPath, admin, filepath.Join(dir, "azimuth.log"))
	if err != nil {
		return nil, err
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = proc.stop(10 * time.Second)
		}
	}()
	if err := proc.waitReady(ctx, ro.ReadyTimeout); err != nil {
		return nil, err
	}
	if err := proc.waitServing(ctx, scheme+"://"+listen+sc.Load.Path, ro.ReadyTimeout); err != nil {
		return nil, err
	}
	fmt.Fprintf(ro.Log, "azimuth: ready, listening on %s, admin on %s, zone %s\n", listen, admin, sc.Azimuth.Zone)

	l := sc.Load
	opts := loadtest.Options{
		URL: scheme + "://" + listen + l.Path, Method: l.Method, Protocol: l.Protocol, Insecure: true,
		Rate: l.Rate, Concurrency: l.Concurrency, Duration: l.Duration, Requests: l.Requests,
		Timeout: l.Timeout, IDHeader: idHeader, Mix: l.Mix, Progress: ro.Progress,
	}
	if len(l.Headers) > 0 {
		opts.Header = http.Header{}
		for k, v := range l.Headers {
			opts.Header.Set(k, v)
		}
	}
	if l.Body != "" {
		opts.Body = []byte(l.Body)
	}

	// Faults, probes and the /status poller run beside the load, on its
	// clock, and stop with it: the fault clock starts with the load's own,
	// so "at: 5s" is second 5 of the timeline whatever the setup took.
	loadCtx, stopLoad := context.WithCancel(ctx)
	var (
		applied []Applied
		probes  []ProbeResult
		beside  sync.WaitGroup
	)
	poller := newStatusPoller(admin, "app")
	opts.Started = func(start time.Time) {
		beside.Go(func() { applied = playFaults(loadCtx, fl, sc.Faults, start, ro.Log) })
		beside.Go(func() { poller.run(loadCtx) })
		beside.Go(func() { probes = playProbes(ctx, loadCtx, scheme+"://"+listen, sc.Probes, start, l.Timeout) })
	}
	res, runErr := loadtest.Run(ctx, opts)
	loadEnd := time.Now()
	stopLoad()
	beside.Wait()

	metrics := scrapeMetrics(admin)
	stopped = true
	stopErr := proc.stop(10 * time.Second) // the config sets a 100ms drain and 5s grace
	if runErr != nil {
		return nil, fmt.Errorf("driving load through azimuth: %w", runErr)
	}
	obs := &observations{fleet: fl, start: res.Start, end: loadEnd, tailEnd: loadEnd, metrics: metrics, probes: probes, config: cfg}
	if l.Duration > 0 {
		obs.tailEnd = res.Start.Add(l.Duration)
	}
	obs.polls, obs.pollErr, obs.lastErr = poller.result()
	rep := newReport(sc, res, applied, obs)
	rep.AzimuthStop = stopErr
	return rep, nil
}

// playFaults applies each event at its offset from start, in time order,
// until ctx ends.
func playFaults(ctx context.Context, fl *fleet.Fleet, events []Event, start time.Time, log io.Writer) []Applied {
	order := make([]Event, len(events))
	copy(order, events)
	sortEvents(order)
	var out []Applied
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for _, e := range order {
		if wait := time.Until(start.Add(e.At)); wait > 0 {
			t.Reset(wait)
			select {
			case <-ctx.Done():
				return out
			case <-t.C:
			}
		}
		var err error
		if e.Backend != "" {
			err = fl.ApplyBackend(e.Backend, e.Fault)
		} else {
			err = fl.ApplyZone(e.Zone, e.Fault)
		}
		a := Applied{Event: e, Offset: time.Since(start), Err: err}
		fmt.Fprintf(log, "%6.2fs  %s: %s", a.Offset.Seconds(), e.Target(), e.Fault)
		if err != nil {
			fmt.Fprintf(log, " (failed: %v)", err)
		}
		fmt.Fprintln(log)
		out = append(out, a)
	}
	return out
}
