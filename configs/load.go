package configs

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// maxFileSize bounds what Load reads; a config file is a few kilobytes, and
// a runaway file should be an error, not a memory spike.
const maxFileSize = 4 << 20

// Load reads, decodes, defaults and validates the config file at path. A
// file that cannot be read gives a wrapped os error (errors.Is works with
// fs.ErrNotExist); a file that can be read but is wrong gives *Errors with
// every problem and its line.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading config %s: %w", path, err)
	}
	if len(data) > maxFileSize {
		return nil, &Errors{Problems: []Problem{{File: path, Msg: fmt.Sprintf("file is larger than %d bytes", maxFileSize)}}}
	}
	return Parse(path, data)
}

// Parse decodes, defaults and validates data as the config file named
// name. Relative file paths inside it are resolved against name's
// directory; the environment supplies the zone when the file has none.
func Parse(name string, data []byte) (*Config, error) {
	src, err := filepath.Abs(name)
	if err != nil {
		src = name
	}
	sum := sha256.Sum256(data)
	c := &Config{Source: src, Hash: hex.EncodeToString(sum[:]), index: newIndex()}

	root, probs := parseYAML(name, data)
	if len(probs) > 0 {
		return nil, &Errors{Problems: sorted(probs)}
	}
	d := &decoder{file: name, ix: c.index}
	d.decode(root, reflect.ValueOf(c).Elem(), "")
	applyDefaults(c, c.index, os.Getenv)
	resolvePaths(c, filepath.Dir(src))
	// Validate even when decoding found problems, so the operator sees
	// everything at once, but drop what only echoes a value that failed
	// to decode (a bad "request: -1s" would also read as "must be > 0").
	probs = d.probs
	if d.nodes <= maxNodes {
		for _, p := range validate(c, name) {
			if !underAny(p.Path, d.probs) {
				probs = append(probs, p)
			}
		}
	}
	if len(probs) > 0 {
		return nil, &Errors{Problems: capped(sorted(probs))}
	}
	return c, nil
}

// maxProblems bounds the problems reported for one file; past it the rest
// are counted, since a file that wrong is better fixed from the top.
const maxProblems = 100

func capped(ps []Problem) []Problem {
	if len(ps) <= maxProblems {
		return ps
	}
	last := ps[maxProblems-1]
	return append(ps[:maxProblems-1:maxProblems-1], Problem{File: last.File, Msg: fmt.Sprintf("and %d more problems", len(ps)-maxProblems+1)})
}

// underAny reports whether path is, or is inside, the path of one of probs.
func underAny(path string, probs []Problem) bool {
	for _, p := range probs {
		if p.Path == "" {
			continue
		}
		if path == p.Path || strings.HasPrefix(path, p.Path+".") || strings.HasPrefix(path, p.Path+"[") {
			return true
		}
	}
	return false
}

// Line returns the line the key at path (such as "pools[0].retry") was
// written on, or of its nearest written ancestor; 0 if unknown. It lets
// later stages, such as building a pool, point at the file too.
func (c *Config) Line(path string) int { return c.index.line(path) }

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parseYAML turns data into the document's top mapping node, or problems
// saying why it cannot.
func parseYAML(name string, data []byte) (*yaml.Node, []Problem) {
	whole := func(msg string) []Problem { return []Problem{{File: name, Msg: msg}} }
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, whole("the file is empty")
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, whole("the file has no settings, only comments")
		}
		return nil, yamlProblems(name, data, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		line := extra.Line
		if err != nil {
			return nil, yamlProblems(name, data, err)
		}
		return nil, []Problem{{File: name, Line: line, Msg: "a second YAML document (after ---); put everything in one"}}
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, whole("the file has no settings")
	}
	root := resolve(doc.Content[0])
	if isNull(root) {
		return nil, whole("the file has no settings, only comments")
	}
	if root.Kind != yaml.MappingNode {
		return nil, []Problem{{File: name, Line: root.Line, Msg: "the file must be a mapping of keys (zone:, listeners:, pools: ...), got " + kindName(root)}}
	}
	return root, nil
}

// yamlProblems turns a YAML syntax error into problems with lines. Tabs in
// indentation are the commonest cause and yaml's own message for them is
// obscure, so they are named outright.
func yamlProblems(name string, data []byte, err error) []Problem {
	var probs []Problem
	for i, l := range strings.Split(string(data), "\n") {
		indent := l[:len(l)-len(strings.TrimLeft(l, " \t"))]
		if strings.Contains(indent, "\t") && strings.TrimSpace(l) != "" {
			probs = append(probs, Problem{File: name, Line: i + 1, Msg: "tab in indentation; YAML indents with spaces"})
		}
	}
	if len(probs) > 0 {
		return probs
	}
	msg := err.Error()
	line := 0
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	return []Problem{{File: name, Line: line, Msg: "invalid YAML: " + msg}}
}
