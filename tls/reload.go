package edgetls

import (
	"errors"
	"fmt"
	"time"
)

// expiryCheckInterval is how often Run repeats the expiry warnings.
const expiryCheckInterval = 24 * time.Hour

// Reload reads every pair again and publishes a new snapshot if any changed,
// and reads the client CA bundle again (see reloadClientCAs).
// A pair that fails to read, parse or match its key is logged and keeps
// serving its previous certificate; the error for it is returned (joined),
// and the other pairs still update. Run calls it on file events; callers
// may also call it, for example on SIGHUP.
func (s *Source) Reload() error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()

	old := s.certs.Load()
	entries := make([]*certEntry, len(old.entries))
	var errs []error
	var changed []*certEntry
	for i, prev := range old.entries {
		e, err := loadPair(prev.files)
		if err != nil {
			s.log.Error("certificate reload refused, previous certificate keeps serving",
				"cert_file", prev.files.CertFile, "key_file", prev.files.KeyFile,
				"serving", prev.name, "error", err)
			errs = append(errs, fmt.Errorf("certificates[%d]: %w", i, err))
			s.metrics.reloaded(s.opts.Listener, "refused")
			entries[i] = prev
			continue
		}
		if e.sum == prev.sum {
			entries[i] = prev
			continue
		}
		entries[i] = e
		changed = append(changed, e)
		s.metrics.reloaded(s.opts.Listener, "ok")
		s.log.Info("certificate reloaded",
			"cert_file", e.files.CertFile, "name", e.name, "previous", prev.name,
			"serial", e.leaf.SerialNumber.String(), "not_after", e.leaf.NotAfter)
	}
	if len(changed) > 0 {
		s.certs.Store(newSnapshot(entries))
		s.warnExpiring(changed)
	}
	if err := s.reloadClientCAs(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// reloadClientCAs reads the client CA bundle again, if the listener
// verifies clients, and puts a changed one in use for new handshakes. A
// bundle that fails to read or parse is logged and refused: the previous
// one keeps verifying, so a half-written file never locks clients out.
// The caller holds reloadMu.
func (s *Source) reloadClientCAs() error {
	prev := s.handshake.Load()
	if prev == nil {
		return nil
	}
	cas, err := loadCABundle(s.opts.ClientCAFile)
	if err != nil {
		s.log.Error("client CA bundle reload refused, previous bundle keeps verifying",
			"client_ca_file", s.opts.ClientCAFile, "certificates", prev.cas.n, "error", err)
		s.metrics.reloaded(s.opts.Listener, "refused")
		return fmt.Errorf("client_ca_file: %w", err)
	}
	if cas.sum == prev.cas.sum {
		return nil
	}
	s.handshake.Store(s.handshakeConfigs(cas))
	s.metrics.reloaded(s.opts.Listener, "ok")
	s.log.Info("client CA bundle reloaded", "client_ca_file", s.opts.ClientCAFile,
		"certificates", cas.n, "previous", prev.cas.n)
	return nil
}

// warnExpiring logs a warning for each entry with less than the configured
// validity left, and an error for each that has expired (see expiryOf,
// which Check shares).
func (s *Source) warnExpiring(entries []*certEntry) {
	now := s.clock.Now()
	for _, e := range entries {
		switch expiryOf(e.leaf, now, s.opts.ExpiryWarning) {
		case expired:
			s.log.Error("certificate has expired", "name", e.name,
				"cert_file", e.files.CertFile, "not_after", e.leaf.NotAfter)
		case expiresSoon:
			s.log.Warn("certificate expires soon", "name", e.name,
				"cert_file", e.files.CertFile, "not_after", e.leaf.NotAfter,
				"days_left", int(e.leaf.NotAfter.Sub(now).Hours()/24))
		}
	}
}
