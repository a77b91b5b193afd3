// Package fields writes HTTP/1.1 header fields as net/http writes them
// (Header.Write): in the order of their names, those with invalid names
// left out, line breaks in a value turned into spaces and the value
// trimmed of ASCII white space. Output written this way is byte for byte
// what net/http would send, which the tests of its callers compare.
package fields

import (
	"bufio"
	"net/http"
	"net/textproto"
	"slices"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// Write writes h's fields to bw, skipping the names in skip and, with
// noTrailers, the names under http.TrailerPrefix. keys is scratch for the
// sorted names; Write returns it, emptied, for the next call.
func Write(bw *bufio.Writer, h http.Header, keys []string, skip []string, noTrailers bool) []string {
	keys = keys[:0]
	for k := range h {
		if slices.Contains(skip, k) || noTrailers && strings.HasPrefix(k, http.TrailerPrefix) {
			continue
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !httpguts.ValidHeaderFieldName(k) {
			continue
		}
		for _, v := range h[k] {
			_, _ = bw.WriteString(k)
			_, _ = bw.WriteString(": ")
			_, _ = bw.WriteString(Value(v))
			_, _ = bw.WriteString("\r\n")
		}
	}
	clear(keys)
	return keys[:0]
}

// Value returns v as net/http writes a field value: CR and LF turned into
// spaces, ASCII white space trimmed.
func Value(v string) string {
	if strings.ContainsAny(v, "\r\n") {
		v = lineBreaks.Replace(v)
	}
	return textproto.TrimString(v)
}

var lineBreaks = strings.NewReplacer("\r", " ", "\n", " ")
