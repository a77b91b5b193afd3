package proxy

import (
	"fmt"
	"net/http"
	"testing"
	"time"
)

// TestDecide covers the retry decision over every method, cause and state.
func TestDecide(t *testing.T) {
	policy := RetryPolicy{
		Attempts: 3,
		On:       causes(CauseConnect, CauseTimeout, CauseReset, CauseStatus),
		Statuses: []int{503},
	}
	ok := Attempt{Method: "GET", BodyReplayable: true, Cause: CauseTimeout, Tries: 1, TimeLeft: time.Second, BudgetAllows: true}
	with := func(f func(*Attempt)) Attempt { a := ok; f(&a); return a }

	idempotent := map[string]bool{
		http.MethodGet: true, http.MethodHead: true, http.MethodOptions: true, http.MethodTrace: true,
		http.MethodPut: true, http.MethodDelete: true,
		http.MethodPost: false, http.MethodPatch: false, http.MethodConnect: false, "PROPFIND": false,
	}
	allCauses := []Cause{CauseNone, CauseConnect, CauseTimeout, CauseReset, CauseStatus, CauseClientGone, CauseOther}
	type row struct {
		name string
		a    Attempt
		want Verdict
	}
	var rows []row
	for m, safe := range idempotent {
		for _, c := range allCauses {
			for _, key := range []bool{false, true} {
				a := with(func(a *Attempt) { a.Method, a.Cause, a.HasIdempotencyKey = m, c, key })
				var want Verdict
				switch {
				case c == CauseNone || c == CauseClientGone || c == CauseOther:
					want = NoRetryCause
				case !safe && !key && c != CauseConnect:
					want = NoRetryUnsafe
				default:
					want = Retry
				}
				rows = append(rows, row{fmt.Sprintf("%s/%s/key=%v", m, c, key), a, want})
			}
		}
	}
	rows = append(rows,
		row{"reset before the response", with(func(a *Attempt) { a.Cause = CauseReset }), Retry},
		row{"response started", with(func(a *Attempt) { a.ResponseStarted = true }), NoRetryStarted},
		row{"body not replayable", with(func(a *Attempt) { a.BodyReplayable = false }), NoRetryBody},
		row{"connect failure of a streamed POST", with(func(a *Attempt) { a.Method, a.Cause, a.BodyReplayable = "POST", CauseConnect, false }), NoRetryBody},
		row{"attempts spent", with(func(a *Attempt) { a.Tries = 3 }), NoRetryAttempts},
		row{"last attempt left", with(func(a *Attempt) { a.Tries = 2 }), Retry},
		row{"deadline spent", with(func(a *Attempt) { a.TimeLeft = 0 }), NoRetryDeadline},
		row{"deadline passed", with(func(a *Attempt) { a.TimeLeft = -time.Millisecond }), NoRetryDeadline},
		row{"budget exhausted", with(func(a *Attempt) { a.BudgetAllows = false }), NoRetryBudget},
		row{"client gone beats everything", with(func(a *Attempt) { a.Cause, a.BudgetAllows, a.Tries = CauseClientGone, false, 9 }), NoRetryCause},
		row{"unsafe method beats attempts", with(func(a *Attempt) { a.Method, a.Tries = "POST", 9 }), NoRetryUnsafe},
	)
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			if got := Decide(&policy, r.a); got != r.want {
				t.Errorf("Decide = %v, want %v", got, r.want)
			}
		})
	}

	t.Run("only listed causes", func(t *testing.T) {
		p := RetryPolicy{Attempts: 3, On: causes(CauseConnect)}
		for _, c := range allCauses {
			want := NoRetryCause
			if c == CauseConnect {
				want = Retry
			}
			if got := Decide(&p, with(func(a *Attempt) { a.Cause = c })); got != want {
				t.Errorf("cause %v: Decide = %v, want %v", c, got, want)
			}
		}
	})
}

// TestBudget plays requests and retries on the budget's own clock: each
// request deposits percent/100 of a retry, a retry withdraws one, the
// window forgets both, and the reserve (min_per_second × window) always
// remains.
func TestBudget(t *testing.T) {
	p := RetryPolicy{BudgetPercent: 20, BudgetMinPerSecond: 1, BudgetWindow: 10 * time.Second}
	type step struct {
		at       time.Duration
		requests int // deposits at at
		retries  int // withdrawals tried at at
		want     int // withdrawals allowed
	}
	cases := []struct {
		name  string
		p     RetryPolicy
		steps []step
	}{
		{"a quiet pool has only the reserve", p, []step{{at: time.Second, retries: 20, want: 10}}},
		{"requests pay for retries", p, []step{
			{at: time.Second, requests: 100},             // 20 retries deposited
			{at: 2 * time.Second, retries: 50, want: 30}, // and the reserve's 10
		}},
		{"the burst after a zone fails is paid by the requests before it", p, []step{
			{at: 0, requests: 1000},
			{at: 5 * time.Second, requests: 1000},
			{at: 6 * time.Second, retries: 500, want: 410},
		}},
		{"deposits expire after the window", p, []step{
			{at: 0, requests: 1000},
			{at: 11 * time.Second, retries: 500, want: 10},
		}},
		{"withdrawals expire after the window too", p, []step{
			{at: 0, retries: 20, want: 10},
			{at: 5 * time.Second, retries: 20, want: 0},
			{at: 10*time.Second + time.Millisecond, retries: 20, want: 10},
		}},
		{"a storm is held to percent", p, []step{
			{at: 1 * time.Second, requests: 100, retries: 100, want: 30},
			{at: 2 * time.Second, requests: 100, retries: 100, want: 20},
			{at: 3 * time.Second, requests: 100, retries: 100, want: 20},
		}},
		{"no percent, no reserve: no retry", RetryPolicy{BudgetWindow: 10 * time.Second}, []step{
			{at: time.Second, requests: 1000, retries: 10, want: 0},
		}},
		{"percent 100 lets every request retry once", RetryPolicy{BudgetPercent: 100, BudgetWindow: time.Second}, []step{
			{at: 0, requests: 7, retries: 10, want: 7},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var b Budget
			for i, st := range c.steps {
				for range st.requests {
					b.deposit(st.at, &c.p)
				}
				got := 0
				for range st.retries {
					if b.withdraw(st.at, &c.p) {
						got++
					}
				}
				if got != st.want {
					t.Fatalf("step %d at %v: %d retries allowed, want %d", i, st.at, got, st.want)
				}
			}
		})
	}
}
