package scenario

import (
	"fmt"
	"strings"
	"time"

	"github.com/azimuthproxy/azimuth/loadtest"
	"go.yaml.in/yaml/v3"
)

// azimuth decodes the azimuth block. Every key but binary and zone maps to
// one key of the generated config and is optional: an absent key leaves
// the config key out, so the proxy's default applies.
func (d *decoder) azimuth(n *yaml.Node, path string, a *Azimuth) {
	d.mapping(n, path, map[string]func(string, *yaml.Node){
		"binary":             func(k string, v *yaml.Node) { d.str(v, k, &a.Binary) },
		"zone":               func(k string, v *yaml.Node) { d.str(v, k, &a.Zone) },
		"connect_timeout":    func(k string, v *yaml.Node) { opt(d.dur, v, k, &a.ConnectTimeout) },
		"per_try_timeout":    func(k string, v *yaml.Node) { opt(d.perTry, v, k, &a.PerTryTimeout) },
		"request_timeout":    func(k string, v *yaml.Node) { opt(d.dur, v, k, &a.RequestTimeout) },
		"attempts":           func(k string, v *yaml.Node) { opt(d.integer, v, k, &a.Attempts) },
		"retry_on":           func(k string, v *yaml.Node) { d.strList(v, k, &a.RetryOn) },
		"idempotency_header": func(k string, v *yaml.Node) { opt(d.str, v, k, &a.IdempotencyHeader) },
		"budget_percent":     func(k string, v *yaml.Node) { opt(d.integer, v, k, &a.BudgetPercent) },
		"budget_min_per_second": func(k string, v *yaml.Node) {
			opt(d.float, v, k, &a.BudgetMinPerSecond)
		},
		"budget_window": func(k string, v *yaml.Node) { opt(d.dur, v, k, &a.BudgetWindow) },
		"budget_min_concurrency": func(k string, v *yaml.Node) {
			d.errf(v, k, "replaced by budget_min_per_second and budget_window: the retry budget is measured over time now (retry.budget: { percent, min_per_second, window }), not over requests in flight")
		},
		"health_path":          func(k string, v *yaml.Node) { opt(d.str, v, k, &a.HealthPath) },
		"health_interval":      func(k string, v *yaml.Node) { opt(d.dur, v, k, &a.HealthInterval) },
		"health_timeout":       func(k string, v *yaml.Node) { opt(d.dur, v, k, &a.HealthTimeout) },
		"rise":                 func(k string, v *yaml.Node) { opt(d.integer, v, k, &a.Rise) },
		"fall":                 func(k string, v *yaml.Node) { opt(d.integer, v, k, &a.Fall) },
		"consecutive_failures": func(k string, v *yaml.Node) { opt(d.integer, v, k, &a.ConsecutiveFailures) },
		"ejection":             func(k string, v *yaml.Node) { opt(d.dur, v, k, &a.Ejection) },
		"max_ejected_percent":  func(k string, v *yaml.Node) { opt(d.integer, v, k, &a.MaxEjectedPercent) },
		"spill_below":          func(k string, v *yaml.Node) { opt(d.float, v, k, &a.SpillBelow) },
		"panic_below":          func(k string, v *yaml.Node) { opt(d.float, v, k, &a.PanicBelow) },
	})
}

// perTry decodes timeouts.per_try: auto, off, or a positive duration.
func (d *decoder) perTry(v *yaml.Node, key string, into *string) bool {
	s, ok := d.scalar(v, key)
	if !ok {
		return false
	}
	if s != "auto" && s != "off" {
		if t, err := time.ParseDuration(s); err != nil || t <= 0 {
			d.errf(v, key, "%q: want auto, off or a positive duration (e.g. 250ms)", s)
			return false
		}
	}
	*into = s
	return true
}

// validateAzimuth checks the set keys that contradict themselves or each
// other; the proxy validates the rest when it loads the config.
func (d *decoder) validateAzimuth(a Azimuth, at func(key string) *yaml.Node) {
	if a.Attempts != nil && *a.Attempts < 1 {
		d.errf(at("attempts"), "azimuth.attempts", "want at least 1")
	}
	for _, pc := range []struct {
		key string
		v   *int
	}{{"budget_percent", a.BudgetPercent}, {"max_ejected_percent", a.MaxEjectedPercent}} {
		if pc.v != nil && *pc.v > 100 {
			d.errf(at(pc.key), "azimuth."+pc.key, "%d: want 0 to 100", *pc.v)
		}
	}
	spill, panicBelow := 1.0, 0.0
	if a.SpillBelow != nil {
		spill = *a.SpillBelow
	}
	if a.PanicBelow != nil {
		panicBelow = *a.PanicBelow
	}
	if spill > 1 || panicBelow > spill {
		d.errf(at("panic_below"), "azimuth.panic_below", "want 0 ≤ panic_below ≤ spill_below ≤ 1")
	}
	if a.HealthPath != nil && !strings.HasPrefix(*a.HealthPath, "/") {
		d.errf(at("health_path"), "azimuth.health_path", "%q must start with /", *a.HealthPath)
	}
}

// mix decodes load.mix: a list of { method, weight, body }.
func (d *decoder) mix(n *yaml.Node, path string, into *[]loadtest.MixEntry) {
	if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		d.errf(n, path, "want a list of { method, weight, body }")
		return
	}
	var out []loadtest.MixEntry
	for i, item := range n.Content {
		key := fmt.Sprintf("%s[%d]", path, i)
		var e loadtest.MixEntry
		var body *string
		d.mapping(item, key, map[string]func(string, *yaml.Node){
			"method": func(k string, v *yaml.Node) { d.str(v, k, &e.Method) },
			"weight": func(k string, v *yaml.Node) { d.integer(v, k, &e.Weight) },
			"body":   func(k string, v *yaml.Node) { opt(d.str, v, k, &body) },
		})
		if item.Kind != yaml.MappingNode {
			continue
		}
		if e.Method == "" {
			d.errf(item, key+".method", "missing: e.g. method: GET")
		}
		if e.Weight < 1 {
			d.errf(item, key+".weight", "want at least 1")
		}
		if body != nil {
			e.Body = []byte(*body)
		}
		out = append(out, e)
	}
	*into = out
}

// probes decodes the probes list: { at, method, path }.
func (d *decoder) probes(n *yaml.Node, path string, into *[]Probe) {
	if n.Kind != yaml.SequenceNode {
		d.errf(n, path, "want a list of { at, method, path }")
		return
	}
	for i, item := range n.Content {
		key := fmt.Sprintf("%s[%d]", path, i)
		p := Probe{Method: "GET", Line: item.Line}
		hasAt := false
		d.mapping(item, key, map[string]func(string, *yaml.Node){
			"at":     func(k string, v *yaml.Node) { hasAt = d.dur(v, k, &p.At) },
			"method": func(k string, v *yaml.Node) { d.str(v, k, &p.Method) },
			"path":   func(k string, v *yaml.Node) { d.str(v, k, &p.Path) },
		})
		if item.Kind != yaml.MappingNode {
			continue
		}
		if !hasAt {
			d.errf(item, key+".at", "missing: when the probe is sent, e.g. at: 2s")
		}
		if !strings.HasPrefix(p.Path, "/") {
			d.errf(item, key+".path", "%q must start with /", p.Path)
		}
		*into = append(*into, p)
	}
}
