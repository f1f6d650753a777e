package azure

import (
	"context"
	"testing"

	"github.com/sqlitereplicator/replicator/conformance"
	"github.com/sqlitereplicator/replicator/sdk"
	"github.com/sqlitereplicator/replicator/sdk/plugintest"
)

// TestConformance runs the storage conformance suite against Azurite
// through the plugin process, each leaf in a fresh store (see isolated).
func TestConformance(t *testing.T) {
	srv := testServer(t)
	p := plugintest.Launch(t, pluginName)
	conformance.RunStorageTests(t, conformance.HarnessFunc(func(ctx context.Context, t *testing.T) (sdk.Storage, error) {
		return p.Open(ctx, isolated(t, srv))
	}))
}
