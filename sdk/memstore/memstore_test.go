package memstore_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/sqlitereplicator/replicator/sdk"
	"github.com/sqlitereplicator/replicator/sdk/memstore"
)

// The contract as a whole is tested by the conformance suite
// (conformance/memstore_test.go); these cover what is particular to
// memstore.

func TestDefaultCapabilities(t *testing.T) {
	got := memstore.New().Capabilities()
	if want := (sdk.Capabilities{IfAbsent: true, IfMatch: true}); got != want {
		t.Errorf("New().Capabilities() = %+v, want %+v", got, want)
	}
	caps := sdk.Capabilities{MaxObjectSize: 10}
	if got := memstore.New(memstore.WithCapabilities(caps)).Capabilities(); got != caps {
		t.Errorf("New(WithCapabilities(%+v)).Capabilities() = %+v", caps, got)
	}
}

func TestMaxObjectSize(t *testing.T) {
	ctx := t.Context()
	s := memstore.New(memstore.WithCapabilities(sdk.Capabilities{MaxObjectSize: 4}))
	if _, err := s.Put(ctx, "k", strings.NewReader("1234"), sdk.PutOptions{}); err != nil {
		t.Fatalf("Put(%q) of MaxObjectSize bytes: %v", "k", err)
	}
	_, err := s.Put(ctx, "k", strings.NewReader("12345"), sdk.PutOptions{})
	if !errors.Is(err, sdk.ErrInvalidArgument) {
		t.Errorf("Put(%q) of MaxObjectSize+1 bytes: %v, want InvalidArgument", "k", err)
	}
	if info, err := s.Stat(ctx, "k"); err != nil || info.Size != 4 {
		t.Errorf("Stat(%q) after the refused Put = %+v, %v; want the old 4 bytes", "k", info, err)
	}
}

func TestBothConditions(t *testing.T) {
	s := memstore.New()
	_, err := s.Put(t.Context(), "k", strings.NewReader("x"), sdk.PutOptions{IfAbsent: true, IfMatch: "1"})
	if !errors.Is(err, sdk.ErrInvalidArgument) {
		t.Errorf("Put(%q) with IfAbsent and IfMatch: %v, want InvalidArgument", "k", err)
	}
}

// A reader keeps the version it opened, whatever happens to the key.
func TestReaderSnapshot(t *testing.T) {
	ctx := t.Context()
	s := memstore.New()
	if _, err := s.Put(ctx, "k", strings.NewReader("old"), sdk.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	rc, err := s.Get(ctx, "k", 0, -1)
	if err != nil {
		t.Fatalf("Get(%q): %v", "k", err)
	}
	if _, err := s.Put(ctx, "k", strings.NewReader("new"), sdk.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(rc); string(got) != "old" || err != nil {
		t.Errorf("Get(%q) opened before the overwrite read %q, %v; want %q", "k", got, err, "old")
	}
}

func TestCancelledContext(t *testing.T) {
	s := memstore.New()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.Put(ctx, "k", strings.NewReader("x"), sdk.PutOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Put with a cancelled context: %v, want context.Canceled", err)
	}
	if _, err := s.Stat(ctx, "k"); !errors.Is(err, context.Canceled) {
		t.Errorf("Stat with a cancelled context: %v, want context.Canceled", err)
	}
	if err := s.List(ctx, "", "", func(sdk.ObjectInfo) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("List with a cancelled context: %v, want context.Canceled", err)
	}
}

func TestClosed(t *testing.T) {
	ctx := t.Context()
	s := memstore.New()
	if _, err := s.Put(ctx, "k", strings.NewReader("x"), sdk.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := s.Put(ctx, "k", strings.NewReader("x"), sdk.PutOptions{}); err == nil {
		t.Error("Put after Close succeeded")
	}
	if _, err := s.Get(ctx, "k", 0, -1); err == nil || errors.Is(err, sdk.ErrNotFound) {
		t.Errorf("Get after Close: %v, want a closed-store error", err)
	}
	if err := s.List(ctx, "", "", func(sdk.ObjectInfo) error { return nil }); err == nil {
		t.Error("List after Close succeeded")
	}
	if err := s.Delete(ctx, "k"); err == nil {
		t.Error("Delete after Close succeeded")
	}
}
