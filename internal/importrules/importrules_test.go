package importrules

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// rule is one row of ARCHITECTURE.md's table: what a package may import of
// the module, and what its tests may import besides.
type rule struct {
	imports map[string]bool
	tests   map[string]bool
}

// pkg is what `go list -json` says of one package of the module.
type pkg struct {
	ImportPath   string
	Imports      []string
	TestImports  []string
	XTestImports []string
}

const tableHeading = "## Packages and who may import whom"

var backticked = regexp.MustCompile("`([^`]+)`")

// readRules parses the table under tableHeading: the packages in the
// first cell (each in backticks), what they may import in the third, what
// their tests may import besides in the fourth ("nothing" or "—" for
// none).
func readRules(r io.Reader) (map[string]rule, error) {
	rules := map[string]rule{}
	sc := bufio.NewScanner(r)
	in := false
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == tableHeading:
			in = true
			continue
		case !in:
			continue
		case strings.HasPrefix(line, "## "):
			in = false
			continue
		case !strings.HasPrefix(line, "| `"):
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		if len(cells) != 4 {
			return nil, fmt.Errorf("table row with %d cells, want 4: %s", len(cells), line)
		}
		r := rule{imports: set(backtickedIn(cells[2])), tests: set(backtickedIn(cells[3]))}
		for _, n := range backtickedIn(cells[0]) {
			if _, dup := rules[n]; dup {
				return nil, fmt.Errorf("%s has two rows", n)
			}
			rules[n] = r
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(rules) == 0 {
		return nil, errors.New("no table under " + tableHeading)
	}
	return rules, nil
}

func backtickedIn(cell string) []string {
	var out []string
	for _, m := range backticked.FindAllStringSubmatch(cell, -1) {
		out = append(out, strings.TrimSuffix(m[1], "/"))
	}
	return out
}

func set(names []string) map[string]bool {
	m := map[string]bool{}
	for _, n := range names {
		m[n] = true
	}
	return m
}

// violations lists every import of the module's own packages that rules
// do not allow, and every package they do not name. mod is the module's
// path.
func violations(mod string, pkgs []pkg, rules map[string]rule) []string {
	own := func(path string) (string, bool) {
		if rel, ok := strings.CutPrefix(path, mod+"/"); ok {
			return rel, true
		}
		return "", false
	}
	var out []string
	for _, p := range pkgs {
		name, _ := own(p.ImportPath)
		r, ok := rules[name]
		if !ok {
			out = append(out, fmt.Sprintf("%s is not in ARCHITECTURE.md's table: give it a row saying what it owns and may import", name))
			continue
		}
		for _, imp := range p.Imports {
			if dep, ok := own(imp); ok && !r.imports[dep] {
				out = append(out, fmt.Sprintf("%s imports %s, which its row does not allow", name, dep))
			}
		}
		for _, imp := range slices.Concat(p.TestImports, p.XTestImports) {
			if dep, ok := own(imp); ok && dep != name && !r.imports[dep] && !r.tests[dep] {
				out = append(out, fmt.Sprintf("%s's tests import %s, which its row does not allow", name, dep))
			}
		}
	}
	for n := range rules {
		if !slices.ContainsFunc(pkgs, func(p pkg) bool { return p.ImportPath == mod+"/"+n }) {
			out = append(out, fmt.Sprintf("ARCHITECTURE.md's table names %s, which is not a package of the module", n))
		}
	}
	slices.Sort(out)
	return out
}

// The module's imports follow ARCHITECTURE.md's table, and the table names
// every package and no other.
func TestImportsFollowArchitecture(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to read the import graph: %v", err)
	}
	out, err := exec.Command(goBin, "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	doc, err := os.ReadFile(filepath.Join(root, "ARCHITECTURE.md"))
	if err != nil {
		t.Fatal(err)
	}
	rules, err := readRules(bytes.NewReader(doc))
	if err != nil {
		t.Fatalf("ARCHITECTURE.md: %v", err)
	}
	cmd := exec.Command(goBin, "list", "-json=ImportPath,Imports,TestImports,XTestImports", "./...")
	cmd.Dir = root
	cmd.Stderr = os.Stderr
	listed, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	modOut, err := exec.Command(goBin, "list", "-m").Output()
	if err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	mod := strings.TrimSpace(string(modOut))
	var pkgs []pkg
	for dec := json.NewDecoder(bytes.NewReader(listed)); ; {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 10 {
		t.Fatalf("go list found %d packages in %s; the module has more", len(pkgs), root)
	}
	for _, v := range violations(mod, pkgs, rules) {
		t.Error(v)
	}
}

// The checker itself: a forbidden import, a test import, a package with
// no row and a row with no package are each reported; allowed ones are
// not.
func TestViolations(t *testing.T) {
	const doc = "# x\n" + tableHeading + `

| package | owns | may import (ours) | its tests may also import |
|---|---|---|---|
| ` + "`balancer`" + ` | state | nothing | ` + "`internal/testwait`" + ` |
| ` + "`proxy`" + ` | the path | ` + "`balancer`" + ` | — |
| ` + "`internal/testwait`, `gone`" + ` | helpers | nothing | — |

## Next section
| ` + "`ignored`" + ` | a | b | c |
`
	rules, err := readRules(strings.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	const m = "example.com/m"
	pkgs := []pkg{
		{ImportPath: m + "/balancer", TestImports: []string{m + "/internal/testwait", "testing"}},
		{ImportPath: m + "/proxy", Imports: []string{m + "/balancer", m + "/health", "net/http"}, XTestImports: []string{m + "/proxy", m + "/internal/testwait"}},
		{ImportPath: m + "/internal/testwait"},
		{ImportPath: m + "/health"},
	}
	got := violations(m, pkgs, rules)
	want := []string{
		"ARCHITECTURE.md's table names gone, which is not a package of the module",
		"health is not in ARCHITECTURE.md's table: give it a row saying what it owns and may import",
		"proxy imports health, which its row does not allow",
		"proxy's tests import internal/testwait, which its row does not allow",
	}
	if !slices.Equal(got, want) {
		t.Errorf("violations:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if _, err := readRules(strings.NewReader("| `a` | b | c |\n")); err == nil {
		t.Error("a page without the table was read")
	}
	if _, err := readRules(strings.NewReader(tableHeading + "\n| `a` | b | c |\n")); err == nil {
		t.Error("a row of three cells was read")
	}
}
