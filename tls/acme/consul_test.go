package acme

import (
	"context"
	"errors"
	"io/fs"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/azimuthproxy/azimuth/internal/consultest"
)

// TestConsulStorage runs the storage against a real agent: what certmagic
// stores, lists and deletes, and its locks between two proxies.
func TestConsulStorage(t *testing.T) {
	agent := consultest.Start(t)
	ctx := context.Background()
	a := NewConsulStorage(agent.Client(), "azimuth/acme/")
	b := NewConsulStorage(agent.Client(), "azimuth/acme") // the slash is added

	if _, err := a.Load(ctx, "certificates/ca/x/x.crt"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load of a missing key: %v, want fs.ErrNotExist", err)
	}
	if a.Exists(ctx, "certificates") {
		t.Fatal("Exists on an empty prefix")
	}
	before := time.Now()
	for k, v := range map[string]string{
		"certificates/ca/x.test/x.test.crt": "cert",
		"certificates/ca/x.test/x.test.key": "key",
		"certificates/ca/y.test/y.test.crt": "cert y",
		"acme/ca/users/ops/ops.json":        "account",
	} {
		if err := a.Store(ctx, k, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := b.Load(ctx, "certificates/ca/x.test/x.test.key"); err != nil || string(got) != "key" {
		t.Fatalf("another proxy's Load: %q, %v", got, err)
	}
	info, err := b.Stat(ctx, "certificates/ca/x.test/x.test.crt")
	if err != nil || !info.IsTerminal || info.Size != 4 || info.Modified.Before(before.Add(-time.Second)) {
		t.Fatalf("Stat of a key: %+v, %v", info, err)
	}
	if info, err := b.Stat(ctx, "certificates/ca"); err != nil || info.IsTerminal {
		t.Fatalf("Stat of a directory: %+v, %v", info, err)
	}
	if !b.Exists(ctx, "certificates/ca/y.test") {
		t.Fatal("Exists of a directory")
	}
	top, err := b.List(ctx, "certificates/ca", false)
	if err != nil || !slices.Equal(top, []string{"certificates/ca/x.test", "certificates/ca/y.test"}) {
		t.Fatalf("List: %v, %v", top, err)
	}
	all, err := b.List(ctx, "certificates", true)
	if err != nil || len(all) != 3 {
		t.Fatalf("List recursive: %v, %v", all, err)
	}
	if err := b.Delete(ctx, "certificates/ca/x.test"); err != nil {
		t.Fatal(err)
	}
	if a.Exists(ctx, "certificates/ca/x.test/x.test.crt") || !a.Exists(ctx, "certificates/ca/y.test/y.test.crt") {
		t.Fatal("Delete of a directory removed the wrong keys")
	}

	// Locks: while a holds one, b waits; a's Unlock lets b in.
	if err := a.Lock(ctx, "issue_cert_x.test"); err != nil {
		t.Fatal(err)
	}
	var bHolds atomic.Bool
	got := make(chan error, 1)
	go func() {
		err := b.Lock(ctx, "issue_cert_x.test")
		bHolds.Store(err == nil)
		got <- err
	}()
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	err = b.Lock(short, "issue_cert_x.test")
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Lock of a held lock within 300ms: %v, want the context's deadline", err)
	}
	if bHolds.Load() {
		t.Fatal("b took a lock a holds")
	}
	if err := a.Unlock(ctx, "issue_cert_x.test"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("b's Lock after a's Unlock: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("b did not get the lock within 15s of a's Unlock")
	}
	if err := b.Unlock(ctx, "issue_cert_x.test"); err != nil {
		t.Fatal(err)
	}
	if err := b.Unlock(ctx, "issue_cert_x.test"); err == nil {
		t.Fatal("Unlock of a lock not held: no error")
	}
}
