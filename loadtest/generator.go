package loadtest

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Run drives load at the target described by o until its duration or count
// is spent or ctx ends, then returns what it measured. Requests in flight
// when the run ends are waited for (each is bounded by o.Timeout).
func Run(ctx context.Context, o Options) (*Result, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	g := &generator{opts: o}
	if len(o.Mix) > 0 {
		g.mix = newMixPlan(o.Mix)
	}
	switch {
	case o.Protocol == H1 && g.mix == nil:
		if g.h1, err = newH1Request(o); err != nil {
			return nil, err
		}
	case o.Protocol == H1:
		for _, e := range g.mix.entries {
			eo := o
			eo.Method, eo.Body = e.Method, e.Body
			r, err := newH1Request(eo)
			if err != nil {
				return nil, fmt.Errorf("mix entry %s: %w", e.Method, err)
			}
			g.mixH1 = append(g.mixH1, r)
		}
	default:
		for range max(o.Connections, 1) {
			rt, closeRT, err := newTransport(o)
			if err != nil {
				return nil, err
			}
			defer func() { _ = closeRT() }()
			g.rts = append(g.rts, rt)
		}
	}
	return g.run(ctx)
}

// generator holds one run's shared, read-only state and its shards.
type generator struct {
	opts   Options
	rts    []roundTripper // h2 and h3: one client per Options.Connections
	h1     *h1Request     // h1: the generator's own client
	mix    *mixPlan       // nil without a mix
	mixH1  []*h1Request   // h1 with a mix: one request per entry
	start  time.Time
	shards []*shard
	ids    atomic.Int64 // request sequence, for Options.IDHeader
	token  string       // the run's ID prefix
}

// requestID is one request's unique ID: the run's token and a sequence.
type requestID struct {
	token string
	n     int64
}

func (id requestID) append(b []byte) []byte {
	b = append(b, id.token...)
	b = append(b, '-')
	return strconv.AppendInt(b, id.n, 10)
}

func (id requestID) String() string { return string(id.append(nil)) }

func (g *generator) run(ctx context.Context) (*Result, error) {
	o := g.opts
	nShards := min(o.Concurrency, 8)
	g.shards = make([]*shard, nShards)
	var methods []string
	for i := range g.shards {
		if g.mix != nil {
			methods = g.mix.methods
			g.shards[i] = newMixShard(len(methods))
		} else {
			g.shards[i] = newShard()
		}
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if o.Duration > 0 {
		// Dispatch stops at the duration; requests already sent get their
		// own timeout to finish on top of it.
		var stop context.CancelFunc
		runCtx, stop = context.WithTimeout(runCtx, o.Duration)
		defer stop()
	}
	// reqCtx outlives runCtx so in-flight requests may finish; it ends only
	// when the caller's ctx does.
	reqCtx := ctx

	g.start = time.Now()
	g.token = strconv.FormatInt(g.start.UnixNano(), 36)
	if o.Started != nil {
		o.Started(g.start)
	}
	var reporter sync.WaitGroup
	repCtx, stopReporter := context.WithCancel(ctx)
	if o.Progress != nil {
		reporter.Go(func() { g.report(repCtx) })
	}

	var workers sync.WaitGroup
	var issued atomic.Int64
	started := o.Concurrency
	if o.openLoop() {
		jobs := make(chan time.Time)
		spawned := 0
		spawn := func() {
			if spawned >= o.Concurrency {
				return
			}
			w := g.newWorker(spawned, reqCtx)
			spawned++
			workers.Go(func() {
				defer w.close()
				for intended := range jobs {
					w.do(intended)
				}
			})
		}
		g.dispatch(ctx, jobs, spawn)
		close(jobs)
		started = spawned
	} else {
		for i := 0; i < o.Concurrency; i++ {
			w := g.newWorker(i, reqCtx)
			workers.Go(func() {
				defer w.close()
				for runCtx.Err() == nil {
					if o.Requests > 0 && issued.Add(1) > o.Requests {
						return
					}
					w.do(time.Now())
				}
			})
		}
	}
	workers.Wait()
	elapsed := time.Since(g.start)
	stopReporter()
	reporter.Wait()

	res := &Result{
		URL: o.URL, Method: o.Method, Protocol: o.Protocol, Mode: "closed",
		Rate: o.Rate, Concurrency: o.Concurrency, Workers: started, Start: g.start, Elapsed: elapsed,
	}
	if o.openLoop() {
		res.Mode = "open"
	}
	mergeShards(res, g.shards, methods)
	if res.Requests == 0 && ctx.Err() != nil {
		return res, fmt.Errorf("running load: %w", ctx.Err())
	}
	return res, nil
}

// dispatch hands out intended send times at the fixed rate until the
// duration or count is spent or ctx ends. When workers fall behind it keeps
// the schedule: the times it sends are the ones planned, so queueing shows
// up in latency instead of silently lowering the rate.
//
// Workers are started on demand, when no idle one takes a job at once, up
// to Options.Concurrency; so a fast target needs few goroutines and
// connections and a stalled one gets as many as the bound allows.
func (g *generator) dispatch(ctx context.Context, jobs chan<- time.Time, spawn func()) {
	o := g.opts
	interval := time.Duration(float64(time.Second) / o.Rate)
	end := time.Time{}
	if o.Duration > 0 {
		end = g.start.Add(o.Duration)
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for i := int64(0); o.Requests == 0 || i < o.Requests; i++ {
		intended := g.start.Add(time.Duration(i) * interval)
		if !end.IsZero() && !intended.Before(end) {
			// The schedule is spent; the run still lasts its duration, so
			// throughput is counted over the time it was planned for.
			if wait := time.Until(end); wait > 0 {
				timer.Reset(wait)
				select {
				case <-ctx.Done():
				case <-timer.C:
				}
			}
			return
		}
		if wait := time.Until(intended); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
		}
		select {
		case jobs <- intended:
			continue
		default:
		}
		spawn()
		select {
		case jobs <- intended:
		case <-ctx.Done():
			return
		}
	}
}

// report calls Options.Progress once a second until ctx ends.
func (g *generator) report(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var last int64
	lastAt := g.start
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			h := newHist()
			var n, failed int64
			for _, s := range g.shards {
				a, b := s.snapshot(h)
				n += a
				failed += b
			}
			rate := float64(n-last) / now.Sub(lastAt).Seconds()
			last, lastAt = n, now
			g.opts.Progress(Progress{
				Elapsed: now.Sub(g.start), Requests: n, Failed: failed, Rate: rate,
				P99: time.Duration(h.ValueAtQuantile(99)) * time.Microsecond,
			})
		}
	}
}
