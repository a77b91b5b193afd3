package h1wire

import (
	"bufio"
	"net/http"
	"net/textproto"
	"slices"
	"strings"
)

// WriteFields writes h's fields to bw as net/http writes them
// (Header.Write): in the order of their names, those with invalid names
// left out, each value as FieldValue makes it. It skips the names in skip
// and, with noTrailers, the names under http.TrailerPrefix. keys is
// scratch for the sorted names; WriteFields returns it, emptied, for the
// next call, so a connection that keeps it sorts without allocating.
func WriteFields(bw *bufio.Writer, h http.Header, keys []string, skip []string, noTrailers bool) []string {
	keys = keys[:0]
	for k := range h {
		if slices.Contains(skip, k) || noTrailers && strings.HasPrefix(k, http.TrailerPrefix) {
			continue
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !IsToken(k) {
			continue
		}
		for _, v := range h[k] {
			_, _ = bw.WriteString(k)
			_, _ = bw.WriteString(": ")
			_, _ = bw.WriteString(FieldValue(v))
			_, _ = bw.WriteString("\r\n")
		}
	}
	clear(keys)
	return keys[:0]
}

// FieldValue returns v as net/http writes a field value: CR and LF turned
// into spaces, so that a value never starts a field of its own (response
// splitting), and ASCII white space trimmed.
func FieldValue(v string) string {
	if strings.ContainsAny(v, "\r\n") {
		v = lineBreaks.Replace(v)
	}
	return textproto.TrimString(v)
}

var lineBreaks = strings.NewReplacer("\r", " ", "\n", " ")
