// Package httpjson writes the admin API's JSON answers, the same way for
// every package that serves a part of it. Each answer is the state of its
// moment, so none may be cached. It imports nothing of ours.
package httpjson

import (
	"encoding/json"
	"net/http"
)

// Write answers with code and v as JSON on one line, as the operator
// overrides answer (scripts match their lines).
func Write(w http.ResponseWriter, code int, v any) { write(w, code, v, "") }

// WriteIndented answers with code and v as indented JSON, for the answers
// people read with curl (/status, /readyz).
func WriteIndented(w http.ResponseWriter, code int, v any) { write(w, code, v, "  ") }

func write(w http.ResponseWriter, code int, v any, indent string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", indent)
	_ = enc.Encode(v)
}
