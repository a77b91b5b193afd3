package edgetls

import (
	"errors"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// keysOf lists the problems' keys, a "!" after a warning's.
func keysOf(probs []Problem) []string {
	var out []string
	for _, p := range probs {
		k := p.Key
		if p.Warning {
			k += "!"
		}
		out = append(out, k)
	}
	return out
}

// Check refuses exactly what New and Reload refuse, blames the file a
// person must fix, and says it in the words the reload logs.
func TestCheckAgreesWithNewAndReload(t *testing.T) {
	ca, other := newCA(t, "edge CA"), newCA(t, "other CA")
	goodA, goodB := ca.issue(t, leafSpec{dns: []string{"a.test"}}), ca.issue(t, leafSpec{dns: []string{"b.test"}})
	stranger := ca.issue(t, leafSpec{dns: []string{"c.test"}})
	tests := []struct {
		name string
		auth string // client_auth; the bundle is read only when it is not none
		// file is what is overwritten, content what is written.
		file    string
		content []byte
		want    []string // keysOf the problems; nil when every file is good
	}{
		{name: "all good", auth: "require"},
		{name: "garbage certificate", file: "a.pem", content: []byte("not a certificate\n"), want: []string{"certificates[0].cert_file"}},
		{name: "garbage certificate, second pair", file: "b.pem", content: []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), want: []string{"certificates[1].cert_file"}},
		{name: "a key where the certificate goes", file: "a.pem", content: goodA.keyPEM, want: []string{"certificates[0].cert_file"}},
		{name: "garbage key", file: "a-key.pem", content: []byte("not a key\n"), want: []string{"certificates[0].key_file"}},
		{name: "key of another certificate", file: "b-key.pem", content: stranger.keyPEM, want: []string{"certificates[1].key_file"}},
		{name: "certificate and key in one file", file: "a.pem", content: append(append([]byte{}, goodA.certPEM...), goodA.keyPEM...)},
		{name: "garbage client CA", auth: "require", file: "ca.pem", content: []byte("junk\n"), want: []string{"client_ca_file"}},
		{name: "empty client CA", auth: "verify_if_given", file: "ca.pem", content: nil, want: []string{"client_ca_file"}},
		{name: "client CA with a key in it", auth: "require", file: "ca.pem", content: append(append([]byte{}, other.pem...), goodA.keyPEM...), want: []string{"client_ca_file"}},
		{name: "client CA unused without client auth", auth: "none", file: "ca.pem", content: []byte("junk\n")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			opts := Options{Listener: "https", ClientAuth: tt.auth, ClientCAFile: dir + "/ca.pem", Certs: []CertFile{
				writePair(t, dir, "a", goodA), writePair(t, dir, "b", goodB),
			}}
			writeFile(t, opts.ClientCAFile, ca.pem)
			if tt.auth == "none" || tt.auth == "" {
				// The running proxy reads the bundle only with client auth:
				// a plain listener keeps its Source free of it.
				opts.ClientAuth = "none"
			}
			running, err := New(opts, Deps{Logger: slog.New(&logRecorder{})})
			if err != nil {
				t.Fatalf("New on good files: %v", err)
			}
			defer running.Close()
			if tt.file != "" {
				writeFile(t, dir+"/"+tt.file, tt.content)
			}

			probs := Check(opts, time.Now())
			if got := keysOf(probs); !slices.Equal(got, tt.want) {
				t.Fatalf("Check problems %v (%v), want %v", got, probs, tt.want)
			}
			_, newErr := New(opts, Deps{Logger: slog.New(&logRecorder{})})
			reloadErr := running.Reload()
			for what, err := range map[string]error{"New": newErr, "Reload": reloadErr} {
				if (err != nil) != (len(probs) > 0) {
					t.Errorf("%s: %v, but Check found %v", what, err, probs)
				}
				for _, p := range probs {
					if err != nil && !strings.Contains(err.Error(), p.Err.Error()) {
						t.Errorf("%s says %q, Check %q: the two must say the same", what, err, p.Err)
					}
				}
			}
		})
	}
}

// CheckBackend refuses what BackendTLSConfig refuses, with the key of the
// file at fault.
func TestCheckBackendAgreesWithBackendTLSConfig(t *testing.T) {
	ca := newCA(t, "backend CA")
	dir := t.TempDir()
	writeFile(t, dir+"/ca.pem", ca.pem)
	writeFile(t, dir+"/empty.pem", nil)
	writeFile(t, dir+"/garbage.pem", []byte("junk\n"))
	client := writePair(t, dir, "client", ca.issue(t, leafSpec{cn: "azimuth", client: true}))
	otherKey := writePair(t, dir, "other", ca.issue(t, leafSpec{cn: "other", client: true})).KeyFile
	tests := []struct {
		name string
		opts BackendOptions
		want []string
	}{
		{name: "system roots, no client certificate", opts: BackendOptions{}},
		{name: "CA and client certificate", opts: BackendOptions{CAFile: dir + "/ca.pem", CertFile: client.CertFile, KeyFile: client.KeyFile}},
		{name: "empty CA bundle", opts: BackendOptions{CAFile: dir + "/empty.pem"}, want: []string{"ca_file"}},
		{name: "garbage CA bundle", opts: BackendOptions{CAFile: dir + "/garbage.pem"}, want: []string{"ca_file"}},
		{name: "garbage client certificate", opts: BackendOptions{CertFile: dir + "/garbage.pem", KeyFile: client.KeyFile}, want: []string{"cert_file"}},
		{name: "client key of another certificate", opts: BackendOptions{CertFile: client.CertFile, KeyFile: otherKey}, want: []string{"key_file"}},
		{name: "certificate without key", opts: BackendOptions{CertFile: client.CertFile}, want: []string{"key_file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			probs := CheckBackend(tt.opts, time.Now())
			if got := keysOf(probs); !slices.Equal(got, tt.want) {
				t.Fatalf("CheckBackend problems %v (%v), want %v", got, probs, tt.want)
			}
			_, err := BackendTLSConfig(tt.opts)
			if (err != nil) != (len(probs) > 0) {
				t.Fatalf("BackendTLSConfig: %v, but CheckBackend found %v", err, probs)
			}
			if err != nil && !strings.Contains(err.Error(), probs[0].Err.Error()) {
				t.Errorf("BackendTLSConfig says %q, CheckBackend %q", err, probs[0].Err)
			}
		})
	}
}

// A certificate's dates: not valid yet and expired are errors, less than
// the warning period left a warning, judged at the moment given.
func TestCheckValidity(t *testing.T) {
	notBefore := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	notAfter := notBefore.Add(90 * 24 * time.Hour) // 2026-05-30T12:00:00Z
	ca := newCA(t, "CA")
	dir := t.TempDir()
	pair := writePair(t, dir, "a", ca.issue(t, leafSpec{dns: []string{"a.test"}, notBefore: notBefore, notAfter: notAfter}))
	client := writePair(t, dir, "client", ca.issue(t, leafSpec{cn: "azimuth", client: true, notBefore: notBefore, notAfter: notAfter}))
	day := 24 * time.Hour
	tests := []struct {
		name    string
		now     time.Time
		warning bool
		msg     string // "" when there is no problem
	}{
		{name: "not valid yet", now: notBefore.Add(-2 * day), msg: "certificate for a.test is not valid until 2026-03-01T12:00:00Z (in 2 days)"},
		{name: "a second before", now: notBefore.Add(-time.Second), msg: "certificate for a.test is not valid until 2026-03-01T12:00:00Z (in a minute or less)"},
		{name: "first day", now: notBefore},
		{name: "15 days left", now: notAfter.Add(-15 * day)},
		{name: "3 days left", now: notAfter.Add(-3 * day), warning: true, msg: "certificate for a.test expires in 3 days (2026-05-30T12:00:00Z)"},
		{name: "5 hours left", now: notAfter.Add(-5 * time.Hour), warning: true, msg: "certificate for a.test expires in 5 hours (2026-05-30T12:00:00Z)"},
		{name: "at its end", now: notAfter, msg: "certificate for a.test expired a minute or less ago (2026-05-30T12:00:00Z)"},
		{name: "expired", now: notAfter.Add(40 * time.Minute), msg: "certificate for a.test expired 40 minutes ago (2026-05-30T12:00:00Z)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			probs := Check(Options{Certs: []CertFile{pair}}, tt.now)
			if tt.msg == "" {
				if len(probs) > 0 {
					t.Fatalf("problems %v, want none", probs)
				}
				return
			}
			var verr *ValidityError
			if len(probs) != 1 || probs[0].Key != "certificates[0].cert_file" || probs[0].Warning != tt.warning || !errors.As(probs[0].Err, &verr) {
				t.Fatalf("problems %+v, want one ValidityError on certificates[0].cert_file, warning %v", probs, tt.warning)
			}
			if got := probs[0].Err.Error(); got != tt.msg {
				t.Errorf("message %q, want %q", got, tt.msg)
			}
			// A backend's client certificate is judged the same way.
			bp := CheckBackend(BackendOptions{CertFile: client.CertFile, KeyFile: client.KeyFile}, tt.now)
			if len(bp) != 1 || bp[0].Key != "cert_file" || bp[0].Warning != tt.warning {
				t.Errorf("backend client certificate: problems %+v, want one on cert_file, warning %v", bp, tt.warning)
			}
		})
	}
	// The log's threshold is Check's: a shorter warning period is honoured.
	if probs := Check(Options{Certs: []CertFile{pair}, ExpiryWarning: 2 * day}, notAfter.Add(-3*day)); len(probs) != 0 {
		t.Errorf("with a 2-day warning period, 3 days left gave %v", probs)
	}
}

// pairError keeps loadPair's message as the logs have always shown it.
func TestLoadPairErrorText(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir+"/garbage.pem", []byte("junk"))
	_, err := loadPair(CertFile{CertFile: dir + "/garbage.pem", KeyFile: dir + "/garbage.pem"})
	want := "parsing pair " + dir + "/garbage.pem + " + dir + "/garbage.pem: tls: failed to find any PEM data in certificate input"
	if err == nil || err.Error() != want {
		t.Fatalf("error %v, want %q", err, want)
	}
	_, err = loadPair(CertFile{CertFile: dir + "/none.pem", KeyFile: dir + "/garbage.pem"})
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("error %v, want one that is os.ErrNotExist", err)
	}
}
