package packaging

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"unicode"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd  string // upper case: FROM, RUN, ...
	args string // the rest, as written
	line int    // where it starts, 1-based
}

// execForm is the instruction's JSON array form (["a", "b"]), if it is one.
func (in instruction) execForm() ([]string, bool) {
	s := strings.TrimSpace(in.args)
	if !strings.HasPrefix(s, "[") {
		return nil, false
	}
	var v []string
	if json.Unmarshal([]byte(s), &v) != nil {
		return nil, false
	}
	return v, true
}

// flagsAndRest splits leading --name=value flags (FROM, COPY, HEALTHCHECK)
// from the words after them.
func (in instruction) flagsAndRest() (map[string]string, string) {
	flags := map[string]string{}
	rest := strings.TrimSpace(in.args)
	for strings.HasPrefix(rest, "--") {
		word, after, _ := strings.Cut(rest, " ")
		k, v, _ := strings.Cut(strings.TrimPrefix(word, "--"), "=")
		flags[k] = v
		rest = strings.TrimSpace(after)
	}
	return flags, rest
}

// stage is a FROM and the instructions up to the next one.
type stage struct {
	base, name string
	instrs     []instruction
}

func (s *stage) all(cmd string) []instruction {
	var out []instruction
	for _, in := range s.instrs {
		if in.cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

// last is the stage's last cmd instruction: the one that takes effect
// for USER, HEALTHCHECK, ENTRYPOINT and CMD.
func (s *stage) last(cmd string) (instruction, bool) {
	all := s.all(cmd)
	if len(all) == 0 {
		return instruction{}, false
	}
	return all[len(all)-1], true
}

// vars are the stage's ARG defaults (overridden by buildArgs) and ENV
// values, as a RUN in it sees them.
func (s *stage) vars(buildArgs map[string]string) map[string]string {
	v := map[string]string{}
	for _, in := range s.instrs {
		switch in.cmd {
		case "ARG":
			name, def, _ := strings.Cut(strings.TrimSpace(in.args), "=")
			v[name] = strings.Trim(def, `"`)
			if b, ok := buildArgs[name]; ok {
				v[name] = b
			}
		case "ENV":
			for k, val := range envPairs(in.args) {
				v[k] = os.Expand(val, func(n string) string { return v[n] })
			}
		}
	}
	return v
}

// envPairs reads ENV's KEY=VALUE pairs (or the legacy "KEY VALUE").
func envPairs(args string) map[string]string {
	words := shellWords(args)
	out := map[string]string{}
	if len(words) >= 2 && !strings.Contains(words[0], "=") {
		out[words[0]] = strings.Join(words[1:], " ")
		return out
	}
	for _, w := range words {
		k, v, _ := strings.Cut(w, "=")
		out[k] = v
	}
	return out
}

// dockerfile is a parsed Dockerfile.
type dockerfile struct {
	globalArgs map[string]string // ARGs before the first FROM
	stages     []*stage
}

// parseDockerfile reads the instructions: comment lines dropped (also
// inside a continuation, as Docker does), lines ending in a backslash
// joined with the next, FROM starting a stage. It is enough for our
// Dockerfile; heredocs and the escape directive are not supported and
// are reported.
func parseDockerfile(src string) (*dockerfile, error) {
	df := &dockerfile{globalArgs: map[string]string{}}
	var cur []string
	start := 0
	flush := func() error {
		if len(cur) == 0 {
			return nil
		}
		text := strings.TrimSpace(strings.Join(cur, " "))
		cur = nil
		word, args, _ := strings.Cut(text, " ")
		in := instruction{cmd: strings.ToUpper(word), args: strings.TrimSpace(args), line: start}
		if strings.Contains(in.args, "<<") && in.cmd == "RUN" {
			return fmt.Errorf("line %d: heredocs are not supported by this parser", start)
		}
		switch {
		case in.cmd == "FROM":
			_, rest := in.flagsAndRest()
			f := strings.Fields(rest)
			st := &stage{base: os.Expand(f[0], func(n string) string { return df.globalArgs[n] })}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				st.name = f[2]
			} else if len(f) != 1 {
				return fmt.Errorf("line %d: FROM %s: want IMAGE [AS NAME]", start, rest)
			}
			df.stages = append(df.stages, st)
		case len(df.stages) == 0:
			if in.cmd != "ARG" {
				return fmt.Errorf("line %d: %s before the first FROM", start, in.cmd)
			}
			name, def, _ := strings.Cut(in.args, "=")
			df.globalArgs[name] = def
		default:
			st := df.stages[len(df.stages)-1]
			st.instrs = append(st.instrs, in)
		}
		return nil
	}
	for i, line := range strings.Split(src, "\n") {
		line = strings.TrimRight(line, " \t\r")
		trimmed := strings.TrimLeftFunc(line, unicode.IsSpace)
		if strings.HasPrefix(trimmed, "# escape=") && len(df.stages) == 0 && len(cur) == 0 {
			return nil, fmt.Errorf("line %d: the escape directive is not supported by this parser", i+1)
		}
		if strings.HasPrefix(trimmed, "#") || trimmed == "" {
			continue // Docker skips both, also inside a continuation
		}
		if len(cur) == 0 {
			start = i + 1
		}
		if body, more := strings.CutSuffix(trimmed, `\`); more {
			cur = append(cur, body)
			continue
		}
		cur = append(cur, trimmed)
		if err := flush(); err != nil {
			return nil, err
		}
	}
	if len(cur) > 0 {
		return nil, fmt.Errorf("line %d: the file ends inside a continuation", start)
	}
	return df, nil
}

// stageNamed finds a stage by its AS name or index.
func (df *dockerfile) stageNamed(name string) (*stage, bool) {
	for i, s := range df.stages {
		if s.name == name || fmt.Sprint(i) == name {
			return s, true
		}
	}
	return nil, false
}

// shellWords splits a shell command line into words the way sh would for
// plain words, 'single' and "double" quotes and backslash escapes. It does
// no expansion. Unquoted && and ; are kept as words of their own.
func shellWords(s string) []string {
	var cmds [][]string
	for i, c := range shellCommands(s) {
		if i > 0 {
			cmds = append(cmds, []string{"&&"})
		}
		cmds = append(cmds, c)
	}
	return slices.Concat(cmds...)
}

// shellCommands splits a RUN line into its commands at unquoted && and ;,
// each command as words (see shellWords).
func shellCommands(s string) [][]string {
	var cmds [][]string
	var words []string
	var b strings.Builder
	inWord := false
	var quote rune
	endWord := func() {
		if inWord {
			words = append(words, b.String())
			b.Reset()
			inWord = false
		}
	}
	rs := []rune(s)
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch {
		case quote == '\'' && r == '\'', quote == '"' && r == '"':
			quote = 0
		case quote == '\'':
			b.WriteRune(r)
		case r == '\\' && i+1 < len(rs) && (quote == 0 || strings.ContainsRune(`"\$`+"`", rs[i+1])):
			i++
			b.WriteRune(rs[i])
			inWord = true
		case quote == '"':
			b.WriteRune(r)
		case r == '\'' || r == '"':
			quote = r
			inWord = true
		case r == ';' || (r == '&' && i+1 < len(rs) && rs[i+1] == '&'):
			endWord()
			if r == '&' {
				i++
			}
			cmds = append(cmds, words)
			words = nil
		case unicode.IsSpace(r):
			endWord()
		default:
			b.WriteRune(r)
			inWord = true
		}
	}
	endWord()
	return append(cmds, words)
}
