package gcs_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"

	"github.com/sqlitereplicator/replicator/conformance"
	"github.com/sqlitereplicator/replicator/plugins/gcs"
	"github.com/sqlitereplicator/replicator/sdk"
	"github.com/sqlitereplicator/replicator/sdk/plugintest"
)

// TestMain lets the test binary serve the plugin: the tests run the store
// out-of-process, through the same protocol the replicator uses.
func TestMain(m *testing.M) {
	plugintest.ServeIfChild("gcs", gcs.Open)
	os.Exit(m.Run())
}

// server returns the endpoint and bucket of the test server started by
// scripts/test-servers.sh. Without one the test is skipped locally, and
// fails in CI, which must never skip it silently.
func server(t *testing.T) (endpoint, bucket string) {
	t.Helper()
	endpoint, bucket = os.Getenv("TEST_GCS_ENDPOINT"), os.Getenv("TEST_GCS_BUCKET")
	if endpoint == "" || bucket == "" {
		msg := "TEST_GCS_ENDPOINT and TEST_GCS_BUCKET are not set; run the tests with scripts/test-servers.sh run -- go test ./plugins/gcs"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return endpoint, bucket
}

func randomPrefix(t testing.TB, base string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return base + "/" + hex.EncodeToString(b[:])
}

// emptyPrefix deletes whatever is left under prefix, through a store
// opened in-process (the suite has closed the plugin's by then).
func emptyPrefix(t *testing.T, settings map[string]string) {
	t.Helper()
	ctx := context.Background()
	st, err := gcs.Open(ctx, settings)
	if err != nil {
		t.Errorf("clean-up: open %s: %v", settings["path"], err)
		return
	}
	defer st.Close()
	var keys []string
	err = st.List(ctx, "", "", func(info sdk.ObjectInfo) error {
		keys = append(keys, info.Key)
		return nil
	})
	if err == nil && len(keys) > 0 {
		err = st.Delete(ctx, keys...)
	}
	if err != nil {
		t.Errorf("clean-up of %s: %v", settings["path"], err)
	}
}

// harness opens each store in one plugin process, under a fresh random
// prefix of the test bucket, and empties the prefix afterwards.
type harness struct {
	endpoint, bucket string
	open             func(ctx context.Context, settings map[string]string) (sdk.Storage, error)
}

func (h *harness) MakeStorage(ctx context.Context, t *testing.T) (sdk.Storage, error) {
	settings := map[string]string{
		"bucket":   h.bucket,
		"endpoint": h.endpoint,
		"path":     randomPrefix(t, "conformance"),
	}
	t.Cleanup(func() { emptyPrefix(t, settings) })
	return h.open(ctx, settings)
}

func (h *harness) Close() {}

func TestConformance(t *testing.T) {
	endpoint, bucket := server(t)
	p := plugintest.Launch(t, "gcs")
	conformance.RunStorageTests(t, &harness{endpoint: endpoint, bucket: bucket, open: p.Open})
}

// TestPathIsolation checks that a store sees only its own prefix: keys of
// a sibling prefix that shares the first characters never leak in.
func TestPathIsolation(t *testing.T) {
	endpoint, bucket := server(t)
	ctx := t.Context()
	base := randomPrefix(t, "isolation")
	open := func(path string) sdk.Storage {
		settings := map[string]string{"bucket": bucket, "endpoint": endpoint, "path": path}
		t.Cleanup(func() { emptyPrefix(t, settings) })
		return plugintest.Open(t, "gcs", settings)
	}
	a, ab := open(base+"/a"), open(base+"/ab")
	for _, st := range []sdk.Storage{a, ab} {
		if _, err := st.Put(ctx, "k", strings.NewReader("x"), sdk.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	if err := a.List(ctx, "", "", func(info sdk.ObjectInfo) error { got = append(got, info.Key); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != "k" {
		t.Errorf("List of path %s/a = %q, want [\"k\"] only", base, got)
	}
	// A leading or trailing slash in the path names the same prefix.
	slashed := open("/" + base + "/a/")
	if _, err := slashed.Stat(ctx, "k"); err != nil {
		t.Errorf("Stat(k) through path %q: %v", "/"+base+"/a/", err)
	}
}
