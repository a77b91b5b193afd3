package configs

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
)

// Problem is one thing wrong with a config file, located as precisely as
// the file allows.
type Problem struct {
	// File is the config file's name as given to Load or Parse.
	File string
	// Line is 1-based; 0 when the problem has no single line (an empty
	// file, a missing top-level key).
	Line int
	// Path names the key, such as pools[1].retry.attempts; empty for
	// problems with the file as a whole.
	Path string
	// Msg says what is wrong, in lowercase.
	Msg string
}

// String formats the problem as FILE:LINE: path: message, leaving out the
// parts it lacks, so editors and terminals can jump to the line.
func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(p.Line))
	}
	b.WriteString(": ")
	if p.Path != "" {
		b.WriteString(p.Path)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Errors is every problem found in one config file, in line order. Load and
// Parse return it (as error) whenever the file is unusable; find it with
// errors.As.
type Errors struct {
	// Problems has at least one entry.
	Problems []Problem
}

// Error joins the problems one per line.
func (e *Errors) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// sorted orders problems by line, keeping the order they were found in
// among problems on the same line.
func sorted(ps []Problem) []Problem {
	slices.SortStableFunc(ps, func(a, b Problem) int { return cmp.Compare(a.Line, b.Line) })
	return ps
}
