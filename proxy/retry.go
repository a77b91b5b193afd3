package proxy

import (
	"net/http"
	"time"
)

// RetryPolicy is a pool's retry settings (the retry block of the config).
type RetryPolicy struct {
	// Attempts is the total number of tries, the first included (>= 1).
	Attempts int
	// On lists the causes that may be retried, by Cause.
	On [numCauses]bool
	// Statuses lists the response codes that count as CauseStatus.
	Statuses []int
	// IdempotencyHeader, if set, names a request header that makes a POST or
	// PATCH safe to replay.
	IdempotencyHeader string
	// MaxBody is the largest request body buffered for replay; a longer body
	// streams and is never retried.
	MaxBody int64
	// BudgetPercent, BudgetMinPerSecond and BudgetWindow shape the pool's
	// retry budget (see Budget): each request deposits BudgetPercent/100
	// of a retry, deposits and withdrawals count for BudgetWindow, and
	// BudgetMinPerSecond retries a second are always allowed.
	BudgetPercent      float64
	BudgetMinPerSecond int
	BudgetWindow       time.Duration
}

// RetryStatus reports whether a response code is one the policy retries.
func (p *RetryPolicy) RetryStatus(code int) bool {
	for _, s := range p.Statuses {
		if s == code {
			return true
		}
	}
	return false
}

// Attempt is everything the retry decision needs about a failed attempt.
type Attempt struct {
	Method            string
	HasIdempotencyKey bool // the request carries the pool's idempotency header
	BodyReplayable    bool // no body, or fully buffered under max_body
	ResponseStarted   bool // some of the response reached the client
	Cause             Cause
	Tries             int           // attempts made so far, this one included
	TimeLeft          time.Duration // until the request deadline
	BudgetAllows      bool          // the pool's retry budget has room
}

// Verdict is the retry decision with its reason, for logs and metrics.
type Verdict uint8

const (
	Retry Verdict = iota
	NoRetryCause
	NoRetryUnsafe
	NoRetryBody
	NoRetryStarted
	NoRetryAttempts
	NoRetryDeadline
	NoRetryBudget
)

var verdictNames = [...]string{"retry", "cause_not_retryable", "not_idempotent", "body_not_replayable", "response_started", "attempts_spent", "deadline_spent", "budget_exhausted"}

func (v Verdict) String() string { return verdictNames[v] }

// Refusal is the reason a retry the cause called for was refused, as the
// access log (retry_refused) and azimuth_retries_refused_total name it;
// "" when the verdict is not a refusal (a retry, or a cause that is never
// retried).
func (v Verdict) Refusal() string {
	switch v {
	case NoRetryUnsafe:
		return RefusedNotReplayable
	case NoRetryBody:
		return RefusedBodyTooLarge
	case NoRetryAttempts:
		return RefusedAttemptsSpent
	case NoRetryDeadline:
		return RefusedDeadline
	case NoRetryBudget:
		return RefusedBudget
	}
	return ""
}

// Reasons a retry or hedge was refused.
const (
	RefusedBudget        = "budget"
	RefusedNotReplayable = "not_replayable"
	RefusedBodyTooLarge  = "body_too_large"
	RefusedAttemptsSpent = "attempts_spent"
	RefusedDeadline      = "deadline"
	RefusedNoBackend     = "no_backend"
)

// Decide is the retry decision, a pure function of the attempt and policy.
// It decides a retry after a failure and a hedge alike: a hedge is decided
// with CauseTimeout (the attempt's per-try time ran out) or CauseOut (its
// backend was taken out; always a reason, whatever retry.on says).
// Safe to replay means: the method is idempotent (RFC 9110 section 9.2.2),
// or the request carries the pool's idempotency key, or the backend provably
// never saw it (a connect failure, or an attempt unsent because its
// backend went out first). The order of the checks is the order of
// the reasons reported: a client that left beats everything. A cause it
// does not know is never retried.
func Decide(p *RetryPolicy, a Attempt) Verdict {
	switch {
	case a.Cause == CauseNone || a.Cause == CauseClientGone || a.Cause == CauseCancelled || a.Cause >= numCauses ||
		!p.On[a.Cause] && a.Cause != CauseOut && a.Cause != CauseUnsent:
		return NoRetryCause
	case a.ResponseStarted:
		return NoRetryStarted
	case !(Idempotent(a.Method) || a.HasIdempotencyKey || a.Cause == CauseConnect || a.Cause == CauseUnsent):
		return NoRetryUnsafe
	case !a.BodyReplayable:
		return NoRetryBody
	case a.Tries >= p.Attempts:
		return NoRetryAttempts
	case a.TimeLeft <= 0:
		return NoRetryDeadline
	case !a.BudgetAllows:
		return NoRetryBudget
	}
	return Retry
}

// Idempotent reports whether RFC 9110 defines the method as idempotent.
// POST, PATCH, CONNECT and unknown methods are not.
func Idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace,
		http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}
