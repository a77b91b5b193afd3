package edgetls

import (
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"sync"
)

// ticketKeys is the session ticket key ring of one listener, shared by its
// TCP and QUIC configs. Keys live in a private holder *tls.Config whose only
// job is SetSessionTicketKeys/EncryptTicket/DecryptTicket: the listener
// configs call it through WrapSession/UnwrapSession, so rotation reaches
// every clone of them (http.Server and quic-go both clone the config, and a
// clone would otherwise freeze the keys it had).
type ticketKeys struct {
	holder *tls.Config
	kept   int

	mu   sync.Mutex
	keys [][32]byte // newest first; keys[0] encrypts, all decrypt
	gen  uint64     // rotations so far, for tests and logs
}

// newTicketKeys makes a ring with one fresh key that keeps kept old ones.
func newTicketKeys(kept int) (*ticketKeys, error) {
	k := &ticketKeys{holder: &tls.Config{}, kept: kept}
	if err := k.rotate(); err != nil {
		return nil, err
	}
	return k, nil
}

// rotate makes a new encryption key and drops keys beyond kept old ones.
func (k *ticketKeys) rotate() error {
	var key [32]byte
	if _, err := rand.Read(key[:]); err != nil {
		return fmt.Errorf("generating session ticket key: %w", err)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	keys := append([][32]byte{key}, k.keys...)
	if len(keys) > k.kept+1 {
		keys = keys[:k.kept+1]
	}
	k.keys = keys
	k.gen++
	k.holder.SetSessionTicketKeys(keys)
	return nil
}

// generation reports how many times the ring has rotated.
func (k *ticketKeys) generation() uint64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.gen
}

// install makes cfg encrypt and decrypt tickets with the ring.
func (k *ticketKeys) install(cfg *tls.Config) {
	cfg.WrapSession = k.holder.EncryptTicket
	cfg.UnwrapSession = k.holder.DecryptTicket
}
