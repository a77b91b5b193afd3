package configs

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestHedgeConfig(t *testing.T) {
	t.Setenv(EnvZone, "")
	name := filepath.Join(t.TempDir(), "azimuth.yaml")
	for _, tc := range []struct {
		name, yaml, path, msg string
	}{
		{"delay zero", "    hedge: { delay: 0s } #<\n", "pools[0].hedge.delay", "above 0"},
		{"delay not a duration", "    hedge: { delay: soon } #<\n", "pools[0].hedge.delay", "want auto or a duration"},
		{"max zero", "    hedge: { max: 0 } #<\n", "pools[0].hedge.max", "at least 1"},
		{"max above attempts", "    retry: { attempts: 2 }\n    hedge: { max: 2 } #<\n", "pools[0].hedge.max", "retry.attempts of at least 3"},
		{"no timeout in retry.on", "    retry: { on: [connect_failure] }\n    hedge: {} #<\n", "pools[0].hedge", "needs \"timeout\" in retry.on"},
		{"delay past the request", "    timeouts: { request: 1s }\n    hedge: { delay: 2s } #<\n", "pools[0].hedge.delay", "not below timeouts.request"},
	} {
		t.Run(tc.name, func(t *testing.T) { wantProblem(t, name, okListeners+okPools+tc.yaml, tc.path, tc.msg) })
	}

	for _, tc := range []struct {
		name, yaml string
		want       *Hedge
	}{
		{"off without the block", "", nil},
		{"auto and one by default", "    hedge: {}\n", &Hedge{Delay: HedgeDelay{Auto: true}, Max: 1}},
		{"fixed", "    hedge: { delay: 40ms, max: 2 }\n", &Hedge{Delay: HedgeDelay{Fixed: 40 * time.Millisecond}, Max: 2}},
		{"auto written", "    hedge: { delay: auto }\n", &Hedge{Delay: HedgeDelay{Auto: true}, Max: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse(name, []byte(okListeners+okPools+tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			got := c.Pools[0].Hedge
			if (got == nil) != (tc.want == nil) || got != nil && *got != *tc.want {
				t.Errorf("hedge %+v, want %+v", got, tc.want)
			}
		})
	}
}

// wantProblem parses data as the file name and fails unless one problem
// is at the line marked #<, at path, with msg in its message.
func wantProblem(t *testing.T, name, data, path, msg string) {
	t.Helper()
	_, err := Parse(name, []byte(data))
	var errs *Errors
	if !errors.As(err, &errs) {
		t.Fatalf("Parse: %v, want *Errors", err)
	}
	for _, p := range errs.Problems {
		if p.Line == markLine(data) && p.Path == path && strings.Contains(p.Msg, msg) {
			return
		}
	}
	t.Errorf("no problem at line %d, path %q, containing %q; got:\n%v", markLine(data), path, msg, err)
}
