package plugintest_test

import (
	"context"
	"os"
	"testing"

	"github.com/sqlitereplicator/replicator/conformance"
	"github.com/sqlitereplicator/replicator/sdk"
	"github.com/sqlitereplicator/replicator/sdk/memstore"
	"github.com/sqlitereplicator/replicator/sdk/plugintest"
)

func TestMain(m *testing.M) {
	plugintest.ServeIfChild("mem", func(context.Context, map[string]string) (sdk.Storage, error) {
		return memstore.New(), nil
	})
	os.Exit(m.Run())
}

// TestProtocolConformance runs the storage suite through the gRPC protocol
// against the in-memory store, so protocol bugs show up independently of
// any backend.
func TestProtocolConformance(t *testing.T) {
	p := plugintest.Launch(t, "mem")
	conformance.RunStorageTests(t, conformance.HarnessFunc(func(ctx context.Context, t *testing.T) (sdk.Storage, error) {
		return p.Open(ctx, nil)
	}))
}
