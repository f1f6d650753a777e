package conformance_test

import (
	"context"
	"testing"

	"github.com/sqlitereplicator/replicator/conformance"
	"github.com/sqlitereplicator/replicator/sdk"
	"github.com/sqlitereplicator/replicator/sdk/memstore"
)

// memHarness makes memstores that declare caps.
func memHarness(caps sdk.Capabilities) conformance.Harness {
	return conformance.HarnessFunc(func(context.Context, *testing.T) (sdk.Storage, error) {
		return memstore.New(memstore.WithCapabilities(caps)), nil
	})
}

func TestMemstore(t *testing.T) {
	t.Run("Default", func(t *testing.T) {
		conformance.RunStorageTests(t, conformance.HarnessFunc(func(context.Context, *testing.T) (sdk.Storage, error) {
			return memstore.New(), nil
		}))
	})
	// Without conditions, and with a size limit: the conditional tests
	// are disabled, the refusal of undeclared conditions and the limit
	// are tested.
	t.Run("Minimal", func(t *testing.T) {
		conformance.RunStorageTests(t, memHarness(sdk.Capabilities{MaxObjectSize: 10 << 20}))
	})
}
