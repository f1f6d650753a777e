package replica_test

import (
	"context"
	"strings"
	"testing"

	"github.com/sqlitereplicator/replicator/conformance"
	"github.com/sqlitereplicator/replicator/core/replica"
	"github.com/sqlitereplicator/replicator/sdk"
	"github.com/sqlitereplicator/replicator/sdk/memstore"
)

// TestPrefixContract runs the storage contract through the wrapper, so a
// database of a dir entry gets every guarantee its store gives.
func TestPrefixContract(t *testing.T) {
	conformance.RunStorageTests(t, conformance.HarnessFunc(func(context.Context, *testing.T) (sdk.Storage, error) {
		inner := memstore.New(memstore.WithCapabilities(sdk.Capabilities{IfAbsent: true, IfMatch: true}))
		// A neighbour's object must never show through.
		if _, err := inner.Put(context.Background(), "tenants/a.dbx/k", strings.NewReader("x"), sdk.PutOptions{}); err != nil {
			return nil, err
		}
		return replica.WithPrefix(inner, "tenants/a.db")
	}))
}

func TestPrefixKeys(t *testing.T) {
	ctx := context.Background()
	inner := memstore.New()
	st, err := replica.WithPrefix(inner, "/eu/a.db/")
	if err != nil {
		t.Fatal(err)
	}
	oi, err := st.Put(ctx, "generations/g/x", strings.NewReader("v"), sdk.PutOptions{})
	if err != nil || oi.Key != "generations/g/x" {
		t.Fatalf("Put = %+v, %v", oi, err)
	}
	if _, err := inner.Stat(ctx, "eu/a.db/generations/g/x"); err != nil {
		t.Fatalf("object not under the prefix: %v", err)
	}
	for _, bad := range []string{"../x", "a//b"} {
		if _, err := replica.WithPrefix(inner, bad); err == nil {
			t.Errorf("WithPrefix(%q) accepted", bad)
		}
	}
	if same, _ := replica.WithPrefix(inner, ""); same != sdk.Storage(inner) {
		t.Error("an empty prefix should return the store itself")
	}
}
