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

func TestBudget(t *testing.T) {
	p := RetryPolicy{BudgetPercent: 20, BudgetMin: 3}
	var b Budget
	for range 50 {
		b.begin()
	}
	got := 0
	for range 100 {
		if b.acquire(&p) {
			got++
		}
	}
	if got != 10 {
		t.Fatalf("50 requests in flight at 20%% allowed %d retries, want 10", got)
	}
	var quiet Budget
	quiet.begin()
	got = 0
	for range 10 {
		if quiet.acquire(&p) {
			got++
		}
	}
	if got != 3 {
		t.Fatalf("1 request in flight allowed %d retries, want the floor of 3", got)
	}
	quiet.release()
	if !quiet.acquire(&p) {
		t.Fatal("a released slot was not reusable")
	}
}
