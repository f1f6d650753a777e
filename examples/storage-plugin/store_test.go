package main

import (
	"context"
	"os"
	"testing"

	"github.com/sqlitereplicator/replicator/conformance"
	"github.com/sqlitereplicator/replicator/sdk"
	"github.com/sqlitereplicator/replicator/sdk/plugintest"
)

// The test binary doubles as the plugin executable, so the conformance
// suite below runs the store out-of-process, through the same handshake,
// gRPC and mTLS path replicator uses.
func TestMain(m *testing.M) {
	plugintest.ServeIfChild("hashdir", Open)
	os.Exit(m.Run())
}

func TestConformance(t *testing.T) {
	p := plugintest.Launch(t, "hashdir")
	conformance.RunStorageTests(t, conformance.HarnessFunc(func(ctx context.Context, t *testing.T) (sdk.Storage, error) {
		return p.Open(ctx, map[string]string{"path": t.TempDir()})
	}))
}

func TestSettings(t *testing.T) {
	ctx := context.Background()
	if _, err := Open(ctx, map[string]string{}); sdk.CodeOf(err) != sdk.InvalidArgument {
		t.Errorf("no path: got %v, want InvalidArgument", err)
	}
	if _, err := Open(ctx, map[string]string{"path": t.TempDir(), "bucket": "x"}); sdk.CodeOf(err) != sdk.InvalidArgument {
		t.Errorf("unknown setting: got %v, want InvalidArgument", err)
	}
}
