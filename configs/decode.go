package configs

import (
	"encoding"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"
)

// maxNodes bounds the values one file may expand to through aliases, so a
// small file of nested aliases cannot make the decoder run for ever.
const maxNodes = 200_000

// decoder fills the Config struct tree from a yaml.Node tree by hand rather
// than with yaml's own decoding, so every unknown key, duplicate key and bad
// value is reported with its full path and line, all of them at once.
type decoder struct {
	file  string
	ix    *index
	probs []Problem
	nodes int
}

func (d *decoder) problem(line int, path, format string, args ...any) {
	d.probs = append(d.probs, Problem{File: d.file, Line: line, Path: path, Msg: fmt.Sprintf(format, args...)})
}

var (
	durationType        = reflect.TypeFor[time.Duration]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// decode stores node n into v, which is addressable, naming it path.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	for n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			d.problem(n.Line, path, "unknown alias")
			return
		}
		n = n.Alias
	}
	if d.nodes++; d.nodes > maxNodes {
		if d.nodes == maxNodes+1 {
			d.problem(n.Line, path, "too many values after expanding aliases (more than %d)", maxNodes)
		}
		return
	}
	if isNull(n) {
		return // an empty value leaves the key absent: its default applies
	}
	t := v.Type()
	switch {
	case t == durationType:
		if s, ok := d.scalar(n, path); ok {
			dur, err := ParseDuration(s)
			if err != nil {
				d.problem(n.Line, path, "%v", err)
				return
			}
			v.SetInt(int64(dur))
		}
		return
	case reflect.PointerTo(t).Implements(textUnmarshalerType):
		if s, ok := d.scalar(n, path); ok {
			if err := v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s)); err != nil {
				d.problem(n.Line, path, "%v", err)
			}
		}
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(t.Elem()))
		}
		d.decode(n, v.Elem(), path)
	case reflect.Struct:
		d.mapping(n, v, path)
	case reflect.Slice:
		d.sequence(n, v, path)
	case reflect.Map:
		d.stringMap(n, v, path)
	case reflect.String:
		if s, ok := d.scalar(n, path); ok {
			v.SetString(s)
		}
	case reflect.Bool:
		if s, ok := d.scalar(n, path); ok {
			switch s {
			case "true", "True", "TRUE":
				v.SetBool(true)
			case "false", "False", "FALSE":
				v.SetBool(false)
			default:
				d.problem(n.Line, path, "want true or false, got %q", s)
			}
		}
	case reflect.Int:
		if s, ok := d.number(n, path); ok {
			i, err := strconv.ParseInt(s, 10, 0)
			if err != nil {
				d.problem(n.Line, path, "want a whole number, got %q", s)
				return
			}
			v.SetInt(i)
		}
	case reflect.Float64:
		if s, ok := d.number(n, path); ok {
			f, err := strconv.ParseFloat(s, 64)
			if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
				d.problem(n.Line, path, "want a number, got %q", s)
				return
			}
			v.SetFloat(f)
		}
	default:
		// Only reachable if a field of an unsupported type is added.
		d.problem(n.Line, path, "cannot decode into %s", t)
	}
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null" && n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) == 0
}

// scalar returns n's text if n is a single value.
func (d *decoder) scalar(n *yaml.Node, path string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.problem(n.Line, path, "want a single value, got %s", kindName(n))
		return "", false
	}
	return n.Value, true
}

// number returns n's text if n is an unquoted scalar: a quoted "3" is a
// string, and taking it as a number would hide a mistake.
func (d *decoder) number(n *yaml.Node, path string) (string, bool) {
	s, ok := d.scalar(n, path)
	if ok && n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
		d.problem(n.Line, path, "want a number, got the string %q", s)
		return "", false
	}
	return s, ok
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("the value %q", n.Value)
	}
	return "something else"
}

func (d *decoder) mapping(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.problem(n.Line, path, "want a mapping of keys, got %s", kindName(n))
		return
	}
	fields := fieldsOf(v.Type())
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.problem(k.Line, path, "a key must be a plain name, got %s", kindName(k))
			continue
		}
		name := k.Value
		p := join(path, name)
		if name == "<<" {
			d.problem(k.Line, path, "merge keys (<<) are not supported; write the keys out")
			continue
		}
		if first, dup := seen[name]; dup {
			d.problem(k.Line, p, "duplicate key, first set on line %d", first)
			continue
		}
		seen[name] = k.Line
		idx, ok := fields[name]
		if !ok {
			if why, gone := replacedKeys[v.Type()][name]; gone {
				d.problem(k.Line, p, "%s", why)
				continue
			}
			msg := "unknown key"
			if s := closest(name, fields); s != "" {
				msg += fmt.Sprintf(" (did you mean %s?)", s)
			}
			d.problem(k.Line, p, "%s", msg)
			continue
		}
		d.ix.lines[p] = k.Line
		if !isNull(resolve(val)) {
			d.ix.set[p] = true
		}
		d.decode(val, v.Field(idx), p)
	}
}

// stringMap decodes a mapping whose keys are the user's (header names,
// for instance) into a map with string keys; a key given twice is a
// problem, as in any mapping.
func (d *decoder) stringMap(n *yaml.Node, v reflect.Value, path string) {
	if v.Type().Key().Kind() != reflect.String {
		d.problem(n.Line, path, "cannot decode into %s", v.Type())
		return
	}
	if n.Kind != yaml.MappingNode {
		d.problem(n.Line, path, "want a mapping of names to values, got %s", kindName(n))
		return
	}
	m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.problem(k.Line, path, "a key must be a plain name, got %s", kindName(k))
			continue
		}
		p := join(path, k.Value)
		if first, dup := seen[k.Value]; dup {
			d.problem(k.Line, p, "duplicate key, first set on line %d", first)
			continue
		}
		seen[k.Value] = k.Line
		d.ix.lines[p] = k.Line
		d.ix.set[p] = true
		e := reflect.New(v.Type().Elem()).Elem()
		d.decode(val, e, p)
		m.SetMapIndex(reflect.ValueOf(k.Value).Convert(v.Type().Key()), e)
	}
	v.Set(m)
}

func (d *decoder) sequence(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.SequenceNode {
		d.problem(n.Line, path, "want a list, got %s", kindName(n))
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		p := fmt.Sprintf("%s[%d]", path, i)
		d.ix.lines[p] = item.Line
		d.ix.set[p] = true
		d.decode(item, s.Index(i), p)
	}
	v.Set(s)
}

// resolve follows aliases to the node they name.
func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// replacedKeys are keys an earlier version read, by the struct that held
// them: a file that still has one is told what replaced it, not only that
// the key is unknown.
var replacedKeys = map[reflect.Type]map[string]string{
	reflect.TypeFor[Budget](): {
		"min_concurrency": "no longer read: the budget counts retries over time, not in flight; " +
			"use min_per_second (retries per second always allowed) and window",
	},
}

var fieldCache sync.Map // reflect.Type -> map[string]int

// fieldsOf maps a struct's yaml key names to field indexes.
func fieldsOf(t reflect.Type) map[string]int {
	if m, ok := fieldCache.Load(t); ok {
		return m.(map[string]int)
	}
	m := map[string]int{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		m[name] = i
	}
	fieldCache.Store(t, m)
	return m
}

// closest returns the known key nearest to name if it is within two edits,
// to turn a typo into a hint.
func closest(name string, fields map[string]int) string {
	best, bestDist := "", 3
	for k := range fields {
		if dd := editDistance(strings.ToLower(name), k); dd < bestDist || (dd == bestDist && k < best) {
			best, bestDist = k, dd
		}
	}
	return best
}

// editDistance is the Levenshtein distance, capped in effect by the short
// key names it is used on.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := 1
			if a[i-1] == b[j-1] {
				c = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+c)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
