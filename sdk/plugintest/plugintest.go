// Package plugintest runs a plugin's Storage out-of-process from its own Go
// tests, through the same go-plugin handshake, gRPC and mTLS path a real
// host uses. The test binary doubles as the plugin executable:
//
//	func TestMain(m *testing.M) {
//		plugintest.ServeIfChild("mystore", mystore.Open)
//		os.Exit(m.Run())
//	}
//
//	func TestConformance(t *testing.T) {
//		st := plugintest.Open(t, "mystore", map[string]string{...})
//		...
//	}
package plugintest

import (
	"context"
	"os"
	"testing"

	"github.com/sqlitereplicator/replicator/sdk"
	"github.com/sqlitereplicator/replicator/sdk/host"
)

const childEnv = "REPLICATOR_PLUGINTEST_SERVE"

// ServeIfChild serves open as plugin name and never returns when the test
// binary was started by Launch; otherwise it returns at once.
func ServeIfChild(name string, open sdk.OpenFunc) {
	if os.Getenv(childEnv) == name {
		sdk.Serve(name, open)
		os.Exit(0)
	}
}

// Launch starts the test binary as plugin name and returns its host-side
// handle, closed when the test ends.
func Launch(t testing.TB, name string) *host.Plugin {
	t.Helper()
	t.Setenv(childEnv, name)
	p := host.New(host.Config{Name: name, Path: os.Args[0], Args: []string{"-test.run=^$"}})
	t.Cleanup(func() { p.Close() })
	return p
}

// Open launches plugin name and opens a store with settings in it.
func Open(t testing.TB, name string, settings map[string]string) sdk.Storage {
	t.Helper()
	st, err := Launch(t, name).Open(context.Background(), settings)
	if err != nil {
		t.Fatalf("open %s store through the plugin process: %v", name, err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}
