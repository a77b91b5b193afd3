package configs

import (
	"errors"
	"os"
	"testing"
)

// FuzzLoad feeds arbitrary bytes to Parse: it must never panic, and every
// failure must be *Errors whose problems name the file. The seed corpus
// (the example files here plus testdata/fuzz/FuzzLoad) runs in every
// go test.
func FuzzLoad(f *testing.F) {
	for _, name := range []string{"azimuth.yaml", "minimal.yaml"} {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(""))
	f.Add([]byte("\t- a"))
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("listeners: &l [{name: x, routes: *l}]\n"))
	f.Add([]byte("pools: [{name: p, timeouts: {request: 9999999999999h}}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.yaml", data)
		if err == nil {
			if c == nil || c.Hash == "" || len(c.Listeners) == 0 {
				t.Fatalf("Parse succeeded with %+v", c)
			}
			if err := c.Validate(); err != nil {
				t.Fatalf("a loaded config fails Validate: %v", err)
			}
			return
		}
		var errs *Errors
		if !errors.As(err, &errs) || len(errs.Problems) == 0 {
			t.Fatalf("Parse error %T %v, want *Errors with problems", err, err)
		}
		for _, p := range errs.Problems {
			if p.File != "fuzz.yaml" || p.Msg == "" || p.Line < 0 {
				t.Fatalf("malformed problem %+v", p)
			}
		}
	})
}
