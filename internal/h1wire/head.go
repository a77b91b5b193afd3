package h1wire

import (
	"bytes"
	"net/http"
	"net/textproto"
)

// FieldLine scans the field line at head[i:]: a token name, a colon, a
// value of field text (tabs, spaces, visible ASCII and obs-text) and CRLF.
// It returns where the name ends (the colon), the bounds of the value
// trimmed of spaces and tabs, as net/textproto trims it, and where the
// next line starts. Any other line gets false: an empty name, white
// space before the colon, a line folded onto the one before, a control
// byte, a CR or LF alone, a line that runs off the end of head. net/http
// reads some of those too, by rules of its own; a caller leaves such a
// head to it.
func FieldLine(head []byte, i int) (colon, vstart, vend, next int, ok bool) {
	name := i
	for i < len(head) && tokenByte[head[i]] {
		i++
	}
	if i == name || i == len(head) || head[i] != ':' {
		return 0, 0, 0, 0, false
	}
	colon = i
	i++
	for i < len(head) && (head[i] == ' ' || head[i] == '\t') {
		i++
	}
	vstart = i
	for i < len(head) && textByte[head[i]] {
		i++
	}
	if i+1 >= len(head) || head[i] != '\r' || head[i+1] != '\n' {
		return 0, 0, 0, 0, false
	}
	vend = i
	for vend > vstart && (head[vend-1] == ' ' || head[vend-1] == '\t') {
		vend--
	}
	return colon, vstart, vend, i + 2, true
}

// AddValue adds value under key to h, as net/textproto's reader does,
// and returns what is left of spare: the first value of each key takes a
// slot of spare, so that one array holds them all in place of a slice per
// field. spare must have a slot for every key still to come.
func AddValue(h http.Header, spare []string, key, value string) []string {
	if vv := h[key]; vv != nil {
		h[key] = append(vv, value)
		return spare
	}
	spare[0] = value
	h[key] = spare[:1:1]
	return spare[1:]
}

// CanonicalKey is textproto.CanonicalMIMEHeaderKey for a token, returning
// at once a name already canonical (each letter upper case at the start
// and after a hyphen, lower case elsewhere), as nearly every name a
// client or backend sends is.
func CanonicalKey(name string) string {
	upper := true
	for i := 0; i < len(name); i++ {
		c := name[i]
		if upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z' {
			return textproto.CanonicalMIMEHeaderKey(name)
		}
		upper = c == '-'
	}
	return name
}

// IsTokenByte reports whether c may be part of a token (RFC 9110 section
// 5.6.2): a method, a field name.
func IsTokenByte(c byte) bool { return tokenByte[c] }

// IsToken reports whether s is a token: not empty, of token bytes only.
func IsToken(s string) bool {
	for i := 0; i < len(s); i++ {
		if !tokenByte[s[i]] {
			return false
		}
	}
	return s != ""
}

// PrintableASCII reports whether s has only visible ASCII and spaces: no
// control byte, nothing beyond ASCII.
func PrintableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// tokenByte holds the bytes of a token; textByte those of a field value
// (RFC 9110 section 5.5: field-vchar, obs-text, SP and HTAB), which is
// what net/textproto's reader takes.
var tokenByte, textByte = byteSets()

func byteSets() (token, text [256]bool) {
	for c := 0; c < 256; c++ {
		alnum := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		token[c] = alnum || c < 128 && bytes.IndexByte([]byte("!#$%&'*+-.^_`|~"), byte(c)) >= 0
		text[c] = c == '\t' || ' ' <= c && c != 0x7f
	}
	return token, text
}
