package proxy

import (
	"errors"
	"net/http"
	"time"
)

// RegionHopHeader marks a request a proxy sent to its backup pool: the
// proxy that receives it never sends it to a backup pool of its own, so
// two regions that back each other up never pass a request back and
// forth, and a request crosses regions at most once. A client's copy is
// taken off before a request goes to a backend.
const RegionHopHeader = "Azimuth-Region-Hop"

// Reasons a request goes to its pool's backup pool, as
// azimuth_backup_requests_total and the access log name them.
const (
	backupNoHealthy = "no_healthy_backend" // before any attempt
	backupNoAnswer  = "no_answer"          // after the pool's own attempts
)

// crossTo makes the pool's backup pool the one the request's attempts go
// to, counting why.
func (x *exchange) crossTo(reason string) {
	from := x.pool
	x.backupFor, x.backupReason, x.pool = from, reason, from.backup
	if m := from.metrics; m != nil {
		m.backups.get(backupKey{backup: from.backup.Name, reason: reason}).Inc()
	}
}

// crossable reports whether a request whose attempts in its own pool
// ended with err may go to the backup pool: one was configured and not
// used yet, the request did not come from another region, the client is
// still there, and replaying it is as safe as a retry would be. Nothing
// was sent (no backend to pick, taken out before sending, or a connection
// that could not be made with the body untouched), or the request is
// replayable (an idempotent method or an idempotency key, and a body that
// can be sent again) and failed for a cause its pool's retry.on lists.
// The retry budget is not asked: a request crosses at most once, and the
// other region's proxies send nothing back. A request whose time
// (timeouts.request, counted from its arrival) has run out does not cross.
func (x *exchange) crossable(err error) bool {
	var f *failure
	if !x.mayCross || x.backupFor != nil || !errors.As(err, &f) || x.ctx.Err() != nil {
		return false
	}
	if d := x.pool.backup.Timeouts.Request; d > 0 && time.Since(x.start) >= d {
		return false // no time left for the backup pool to answer in
	}
	switch {
	case f.noBackend, f.cause == CauseUnsent, f.cause == CauseConnect && x.body.untouched():
		return true
	case f.cause == CauseClientGone, f.cause == CauseCancelled:
		return false
	}
	return x.race.replayable && x.pool.Retry.On[f.cause]
}

// markCrossing sets the hop header on a request about to go to the backup
// pool.
func markCrossing(out *http.Request) {
	out.Header.Set(RegionHopHeader, "1")
}

// crossingCopy is the request the backup pool's attempts send after the
// pool's own attempts: a copy with a header map of its own, since a
// transport of an earlier attempt may still be writing the old request
// (a body writer that outlives its failed exchange), with the hop header,
// the backup pool's scheme and the body from its start.
func crossingCopy(x *exchange, out *http.Request) *http.Request {
	c := copyOutbound(out)
	c.Header = out.Header.Clone()
	markCrossing(c)
	c.URL.Scheme = x.pool.Scheme
	if x.body.replayable {
		c.Body = x.body.reader() // the first attempt read the one it had
	}
	return c
}
