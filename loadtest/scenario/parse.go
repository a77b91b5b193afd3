package scenario

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/azimuthproxy/azimuth/loadtest"
	"github.com/azimuthproxy/azimuth/loadtest/fleet"
	"go.yaml.in/yaml/v3"
)

// LoadFile reads and parses the scenario file at path.
func LoadFile(path string) (*Scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading scenario: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes a scenario strictly: an unknown key, a value of the wrong
// kind or an inconsistent setting is an error of the form
// "FILE:LINE: key: problem", and every such error is returned, joined.
func Parse(file string, data []byte) (*Scenario, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	sc := Default()
	sc.Name = strings.TrimSuffix(filepath.Base(file), filepath.Ext(file))
	d := &decoder{file: file}
	if len(root.Content) == 0 {
		return nil, fmt.Errorf("%s:1: scenario is empty", file)
	}
	doc := root.Content[0]
	d.mapping(doc, "", map[string]func(string, *yaml.Node){
		"name":    func(k string, v *yaml.Node) { d.str(v, k, &sc.Name) },
		"fleet":   func(k string, v *yaml.Node) { d.fleet(v, k, &sc.Fleet) },
		"load":    func(k string, v *yaml.Node) { d.load(v, k, &sc.Load) },
		"azimuth": func(k string, v *yaml.Node) { d.azimuth(v, k, &sc.Azimuth) },
		"faults":  func(k string, v *yaml.Node) { d.faults(v, k, &sc.Faults) },
		"probes":  func(k string, v *yaml.Node) { d.probes(v, k, &sc.Probes) },
	})
	d.validate(sc, doc)
	if len(d.errs) > 0 {
		return nil, errors.Join(d.errs...)
	}
	return sc, nil
}

// decoder walks the YAML tree, collecting errors with their lines.
type decoder struct {
	file string
	errs []error
}

func (d *decoder) errf(n *yaml.Node, key, format string, args ...any) {
	d.errs = append(d.errs, fmt.Errorf("%s:%d: %s: %s", d.file, n.Line, key, fmt.Sprintf(format, args...)))
}

func join(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

// mapping calls fields[key] for each key of n; unknown and repeated keys
// are errors.
func (d *decoder) mapping(n *yaml.Node, path string, fields map[string]func(string, *yaml.Node)) {
	if n.Kind != yaml.MappingNode {
		name := path
		if name == "" {
			name = "scenario"
		}
		d.errf(n, name, "want a mapping")
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		key := join(path, k.Value)
		f, ok := fields[k.Value]
		switch {
		case !ok:
			d.errf(k, key, "unknown key (want one of %s)", strings.Join(slices.Sorted(maps.Keys(fields)), ", "))
		case seen[k.Value]:
			d.errf(k, key, "repeated key")
		default:
			seen[k.Value] = true
			f(key, v)
		}
	}
}

func (d *decoder) scalar(v *yaml.Node, key string) (string, bool) {
	if v.Kind != yaml.ScalarNode {
		d.errf(v, key, "want a single value")
		return "", false
	}
	return v.Value, true
}

// The scalar decoders store into into and report whether the value was
// good; a bad one is an error and leaves into alone.

func (d *decoder) str(v *yaml.Node, key string, into *string) bool {
	s, ok := d.scalar(v, key)
	if ok {
		*into = s
	}
	return ok
}

func (d *decoder) dur(v *yaml.Node, key string, into *time.Duration) bool {
	s, ok := d.scalar(v, key)
	if !ok {
		return false
	}
	t, err := time.ParseDuration(s)
	if err != nil || t < 0 {
		d.errf(v, key, "%q is not a duration (want e.g. 500ms, 20s)", s)
		return false
	}
	*into = t
	return true
}

func (d *decoder) integer(v *yaml.Node, key string, into *int) bool {
	s, ok := d.scalar(v, key)
	if !ok {
		return false
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		d.errf(v, key, "%q is not a non-negative integer", s)
		return false
	}
	*into = n
	return true
}

func (d *decoder) float(v *yaml.Node, key string, into *float64) bool {
	s, ok := d.scalar(v, key)
	if !ok {
		return false
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 {
		d.errf(v, key, "%q is not a non-negative number", s)
		return false
	}
	*into = f
	return true
}

// opt stores a decoded value through a pointer, so "set" (even to zero)
// and "absent" stay apart: decode is one of the decoders above.
func opt[T any](decode func(*yaml.Node, string, *T) bool, v *yaml.Node, key string, into **T) {
	var x T
	if decode(v, key, &x) {
		*into = &x
	}
}

func (d *decoder) boolean(v *yaml.Node, key string, into *bool) {
	s, ok := d.scalar(v, key)
	if !ok {
		return
	}
	switch s {
	case "true":
		*into = true
	case "false":
		*into = false
	default:
		d.errf(v, key, "%q: want true or false", s)
	}
}

func (d *decoder) strList(v *yaml.Node, key string, into *[]string) {
	if v.Kind != yaml.SequenceNode {
		d.errf(v, key, "want a list")
		return
	}
	out := []string{}
	for _, item := range v.Content {
		if s, ok := d.scalar(item, key); ok {
			out = append(out, s)
		}
	}
	*into = out
}

func (d *decoder) fleet(n *yaml.Node, path string, f *Fleet) {
	d.mapping(n, path, map[string]func(string, *yaml.Node){
		"zones":             func(k string, v *yaml.Node) { d.strList(v, k, &f.Zones) },
		"backends_per_zone": func(k string, v *yaml.Node) { d.integer(v, k, &f.PerZone) },
		"seed": func(k string, v *yaml.Node) {
			var s int
			d.integer(v, k, &s)
			f.Seed = uint64(s)
		},
		"latency": func(k string, v *yaml.Node) {
			d.mapping(v, k, map[string]func(string, *yaml.Node){
				"fixed":  func(k string, v *yaml.Node) { d.dur(v, k, &f.Latency.Fixed) },
				"jitter": func(k string, v *yaml.Node) { d.dur(v, k, &f.Latency.Jitter) },
			})
		},
	})
}

// load decodes the load block. The default rate (open loop) applies only
// to a file that names neither a rate nor a concurrency: "concurrency: 64"
// alone means a closed loop of 64, not 64 in flight at the default rate.
func (d *decoder) load(n *yaml.Node, path string, l *Load) {
	rateSet, concurrencySet := false, false
	defer func() {
		if concurrencySet && !rateSet {
			l.Rate = 0
		}
	}()
	d.mapping(n, path, map[string]func(string, *yaml.Node){
		"rate":        func(k string, v *yaml.Node) { rateSet = d.float(v, k, &l.Rate) },
		"concurrency": func(k string, v *yaml.Node) { concurrencySet = d.integer(v, k, &l.Concurrency) },
		"duration":    func(k string, v *yaml.Node) { d.dur(v, k, &l.Duration) },
		"requests": func(k string, v *yaml.Node) {
			var r int
			d.integer(v, k, &r)
			l.Requests = int64(r)
		},
		"method":    func(k string, v *yaml.Node) { d.str(v, k, &l.Method) },
		"path":      func(k string, v *yaml.Node) { d.str(v, k, &l.Path) },
		"timeout":   func(k string, v *yaml.Node) { d.dur(v, k, &l.Timeout) },
		"body":      func(k string, v *yaml.Node) { d.str(v, k, &l.Body) },
		"id_header": func(k string, v *yaml.Node) { d.str(v, k, &l.IDHeader) },
		"mix":       func(k string, v *yaml.Node) { d.mix(v, k, &l.Mix) },
		"tls":       func(k string, v *yaml.Node) { d.boolean(v, k, &l.TLS) },
		"protocol": func(k string, v *yaml.Node) {
			var p string
			d.str(v, k, &p)
			switch loadtest.Protocol(p) {
			case loadtest.H1, loadtest.H2, loadtest.H3:
				l.Protocol = loadtest.Protocol(p)
			default:
				d.errf(v, k, "%q: want h1, h2 or h3", p)
			}
		},
		"headers": func(k string, v *yaml.Node) {
			if v.Kind != yaml.MappingNode {
				d.errf(v, k, "want a mapping of header names to values")
				return
			}
			l.Headers = map[string]string{}
			for i := 0; i+1 < len(v.Content); i += 2 {
				var val string
				d.str(v.Content[i+1], k+"."+v.Content[i].Value, &val)
				l.Headers[v.Content[i].Value] = val
			}
		},
	})
}

func (d *decoder) faults(n *yaml.Node, path string, into *[]Event) {
	if n.Kind != yaml.SequenceNode {
		d.errf(n, path, "want a list of {at, zone or backend, fault}")
		return
	}
	for i, item := range n.Content {
		key := fmt.Sprintf("%s[%d]", path, i)
		e := Event{Line: item.Line}
		var fault string
		hasAt := false
		d.mapping(item, key, map[string]func(string, *yaml.Node){
			"at":      func(k string, v *yaml.Node) { hasAt = true; d.dur(v, k, &e.At) },
			"zone":    func(k string, v *yaml.Node) { d.str(v, k, &e.Zone) },
			"backend": func(k string, v *yaml.Node) { d.str(v, k, &e.Backend) },
			"fault": func(k string, v *yaml.Node) {
				d.str(v, k, &fault)
				f, err := fleet.ParseFault(fault)
				if err != nil {
					d.errf(v, k, "%v", err)
				}
				e.Fault = f
			},
		})
		if item.Kind != yaml.MappingNode {
			continue
		}
		if !hasAt {
			d.errf(item, key+".at", "missing: when the fault starts, e.g. at: 5s")
		}
		if fault == "" {
			d.errf(item, key+".fault", "missing: e.g. fault: blackhole")
		}
		if (e.Zone == "") == (e.Backend == "") {
			d.errf(item, key, "want exactly one of zone or backend")
		}
		*into = append(*into, e)
	}
}

// validate checks what single keys cannot: references between sections
// and settings that contradict each other.
func (d *decoder) validate(sc *Scenario, doc *yaml.Node) {
	lineOf := func(path ...string) *yaml.Node {
		n := doc
		for _, p := range path {
			var next *yaml.Node
			for i := 0; n.Kind == yaml.MappingNode && i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == p {
					next = n.Content[i+1]
				}
			}
			if next == nil {
				return n
			}
			n = next
		}
		return n
	}
	f := sc.Fleet
	if len(f.Zones) == 0 {
		d.errf(lineOf("fleet", "zones"), "fleet.zones", "want at least one zone")
	}
	for i, z := range f.Zones {
		if z == "" || slices.Index(f.Zones, z) != i {
			d.errf(lineOf("fleet", "zones"), "fleet.zones", "zone %q is empty or repeated", z)
		}
	}
	if f.PerZone < 1 || f.PerZone > 250 {
		d.errf(lineOf("fleet", "backends_per_zone"), "fleet.backends_per_zone", "want 1 to 250, got %d", f.PerZone)
	}
	l := sc.Load
	if l.Duration == 0 && l.Requests == 0 {
		d.errf(lineOf("load"), "load", "want a duration or a request count, so the run is bounded")
	}
	if l.Rate == 0 && l.Concurrency == 0 {
		d.errf(lineOf("load"), "load", "want a rate (open loop) or a concurrency (closed loop)")
	}
	if !strings.HasPrefix(l.Path, "/") {
		d.errf(lineOf("load", "path"), "load.path", "%q must start with /", l.Path)
	}
	a := sc.Azimuth
	if a.Zone == "" && len(f.Zones) > 0 {
		sc.Azimuth.Zone = f.Zones[0]
	} else if a.Zone != "" && !slices.Contains(f.Zones, a.Zone) {
		d.errf(lineOf("azimuth", "zone"), "azimuth.zone", "%q is not a fleet zone (%s)", a.Zone, strings.Join(f.Zones, ", "))
	}
	d.validateAzimuth(a, func(key string) *yaml.Node { return lineOf("azimuth", key) })
	if len(l.Mix) > 0 && (l.Body != "" || lineOf("load", "method") != lineOf("load")) {
		d.errf(lineOf("load", "mix"), "load.mix", "replaces load.method and load.body: set either")
	}
	for i, e := range sc.Faults {
		key := fmt.Sprintf("faults[%d]", i)
		pos := &yaml.Node{Line: e.Line}
		if e.Zone != "" && !slices.Contains(f.Zones, e.Zone) {
			d.errf(pos, key+".zone", "%q is not a fleet zone (%s)", e.Zone, strings.Join(f.Zones, ", "))
		}
		if e.Backend != "" && !validBackend(f, e.Backend) {
			d.errf(pos, key+".backend", "%q is not a fleet backend (want <zone>-<n>, n from 1 to %d)", e.Backend, f.PerZone)
		}
		if l.Duration > 0 && e.At >= l.Duration {
			d.errf(pos, key+".at", "%v is not before the end of the load (%v)", e.At, l.Duration)
		}
	}
	for i, p := range sc.Probes {
		if l.Duration > 0 && p.At >= l.Duration {
			d.errf(&yaml.Node{Line: p.Line}, fmt.Sprintf("probes[%d].at", i), "%v is not before the end of the load (%v)", p.At, l.Duration)
		}
	}
}

func validBackend(f Fleet, name string) bool {
	i := strings.LastIndex(name, "-")
	if i < 0 {
		return false
	}
	n, err := strconv.Atoi(name[i+1:])
	return err == nil && n >= 1 && n <= f.PerZone && slices.Contains(f.Zones, name[:i])
}
