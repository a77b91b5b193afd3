// Package importrules has no code: its test reads the module's import
// graph with `go list` and fails on an import that the table "Packages and
// who may import whom" in ARCHITECTURE.md does not allow, and on a package
// the table does not name. The table is the rule; the test only reads it,
// so changing a rule is an edit of the page that everyone reads.
package importrules
