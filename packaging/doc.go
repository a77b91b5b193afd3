// Package packaging holds the tests of the files that ship azimuth rather
// than its code: the Dockerfile at the repository's root and the systemd
// unit in configs/systemd. No container engine or systemd manager is
// needed: the Dockerfile is parsed and its build command run, and the unit
// is checked with systemd-analyze.
package packaging
