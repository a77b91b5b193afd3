package loadtest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
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
	if o.Protocol == H1 {
		if g.h1, err = newH1Request(o); err != nil {
			return nil, err
		}
	} else {
		rt, closeRT, err := newTransport(o)
		if err != nil {
			return nil, err
		}
		defer func() { _ = closeRT() }()
		g.rt = rt
	}
	return g.run(ctx)
}

// generator holds one run's shared, read-only state and its shards.
type generator struct {
	opts   Options
	rt     roundTripper // h2 and h3
	h1     *h1Request   // h1: the generator's own client
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
	for i := range g.shards {
		g.shards[i] = newShard()
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
	mergeShards(res, g.shards)
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

// worker sends requests one at a time with its own reusable request and
// read buffer, so the hot loop allocates little beyond what net/http does.
type worker struct {
	g     *generator
	shard *shard
	ctx   context.Context
	req   *http.Request
	buf   []byte
	h1    *h1Conn
}

func (w *worker) close() {
	if w.h1 != nil {
		w.h1.close()
	}
}

func (g *generator) newWorker(i int, ctx context.Context) *worker {
	o := g.opts
	req, err := http.NewRequestWithContext(ctx, o.Method, o.URL, nil)
	if err != nil {
		// The URL was validated in withDefaults; a failure here is a bug.
		panic(fmt.Sprintf("building request: %v", err))
	}
	for k, vs := range o.Header {
		for _, v := range vs {
			if http.CanonicalHeaderKey(k) == "Host" {
				req.Host = v
				continue
			}
			req.Header.Add(k, v)
		}
	}
	w := &worker{g: g, shard: g.shards[i%len(g.shards)], ctx: ctx}
	if g.h1 != nil {
		w.h1 = newH1Conn(g.h1, o.Timeout)
		return w
	}
	w.req, w.buf = req, make([]byte, 32<<10)
	if o.Body != nil {
		req.ContentLength = int64(len(o.Body))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(o.Body)), nil }
	}
	return w
}

// do sends one request planned for intended and records its outcome.
func (w *worker) do(intended time.Time) {
	o := &w.g.opts
	out := outcome{second: int(intended.Sub(w.g.start) / time.Second)}
	if out.second < 0 {
		out.second = 0
	}
	if wait := time.Since(intended); wait > o.Timeout {
		// Planned so long ago that its deadline passed in the queue: it
		// counts as a timeout without being sent.
		out.latency, out.class = wait, ClassTimeout
		w.record(&out)
		return
	}
	var id requestID
	if o.IDHeader != "" {
		id = requestID{token: w.g.token, n: w.g.ids.Add(1)}
	}
	if w.h1 != nil {
		err := w.h1.do(w.ctx, time.Now().Add(o.Timeout), id, &out)
		out.latency = time.Since(intended)
		out.class = Classify(err)
		w.record(&out)
		return
	}
	ctx, cancel := context.WithTimeout(w.ctx, o.Timeout)
	req := w.req.WithContext(ctx)
	if o.IDHeader != "" {
		req.Header = req.Header.Clone()
		req.Header.Set(o.IDHeader, id.String())
	}
	if o.Body != nil {
		req.Body = io.NopCloser(bytes.NewReader(o.Body))
	}
	resp, err := w.g.rt.RoundTrip(req)
	if err == nil {
		out.status = resp.StatusCode
		out.backend = headerValue(resp.Header, "X-Backend")
		out.zone = headerValue(resp.Header, "X-Backend-Zone")
		err = w.drain(resp.Body)
	}
	cancel()
	out.latency = time.Since(intended)
	out.class = Classify(err)
	w.record(&out)
}

func (w *worker) record(out *outcome) { w.shard.record(out) }

// drain reads the body to its end so the connection can be reused and a
// reset mid-body is seen as one.
func (w *worker) drain(body io.ReadCloser) error {
	var err error
	for {
		_, rerr := body.Read(w.buf)
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			err = rerr
			break
		}
	}
	if cerr := body.Close(); err == nil && cerr != nil {
		err = cerr
	}
	return err
}

// headerValue reads a canonical header key without the canonicalization
// Header.Get performs.
func headerValue(h http.Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}
