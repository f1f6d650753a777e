package azure

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/sqlitereplicator/replicator/sdk"
	"github.com/sqlitereplicator/replicator/sdk/plugintest"
)

// pluginName is the name the test binary serves the backend under when it
// runs as its own plugin process.
const pluginName = "azure"

func TestMain(m *testing.M) {
	plugintest.ServeIfChild(pluginName, Open)
	os.Exit(m.Run())
}

// server is the Azurite (or real account) the integration tests use, from
// the TEST_AZURE_* variables that scripts/test-servers.sh writes.
type server struct {
	endpoint, account, key, container string
}

// testServer returns the test server, skipping the test when none is
// configured, except in CI, where a missing server is a failure.
func testServer(t testing.TB) server {
	t.Helper()
	s := server{
		endpoint:  os.Getenv("TEST_AZURE_ENDPOINT"),
		account:   os.Getenv("TEST_AZURE_ACCOUNT"),
		key:       os.Getenv("TEST_AZURE_KEY"),
		container: os.Getenv("TEST_AZURE_CONTAINER"),
	}
	if s.endpoint == "" || s.account == "" || s.key == "" || s.container == "" {
		msg := "TEST_AZURE_ENDPOINT, TEST_AZURE_ACCOUNT, TEST_AZURE_KEY and TEST_AZURE_CONTAINER are not all set (run under scripts/test-servers.sh run -- go test ./plugins/azure)"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return s
}

// settings returns shared-key settings for the server under path.
func (s server) settings(path string) map[string]string {
	return map[string]string{
		"endpoint":     s.endpoint,
		"account-name": s.account,
		"account-key":  s.key,
		"container":    s.container,
		"path":         path,
	}
}

// isolated returns settings for a new, empty store of its own: a fresh
// random path in a fresh container, removed when the test ends. A
// container of its own makes the clean-up one request: Azurite takes tens
// of seconds to delete a few thousand blobs one by one, which the
// conformance suite's larger tests leave. Credentials that may not create
// containers get a fresh path in the shared container instead, emptied
// blob by blob.
func isolated(t testing.TB, s server) map[string]string {
	t.Helper()
	ctx := context.Background()
	name := "rt-" + randomHex(8)
	cred, err := container.NewSharedKeyCredential(s.account, s.key)
	if err != nil {
		t.Fatalf("shared key of TEST_AZURE_KEY: %v", err)
	}
	cc, err := container.NewClientWithSharedKeyCredential(s.endpoint+"/"+name, cred, nil)
	if err == nil {
		_, err = cc.Create(ctx, nil)
	}
	if err != nil {
		t.Logf("cannot create a container for the test (%v); using a path in %s", err, s.container)
		return s.settings(freshPath(t, s, "iso"))
	}
	t.Cleanup(func() {
		if _, err := cc.Delete(context.Background(), nil); err != nil {
			t.Logf("clean-up: delete container %s: %v", name, err)
		}
	})
	s.container = name
	return s.settings("p-" + randomHex(4))
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// freshPath returns a new random path prefix and removes everything under
// it when the test ends, so tests sharing the container never see each
// other's objects.
func freshPath(t testing.TB, s server, name string) string {
	t.Helper()
	path := "test-" + name + "-" + randomHex(8)
	t.Cleanup(func() { removeAll(t, s, path) })
	return path
}

// removeAll deletes every blob under path, in batches of 256: the
// emulator takes far longer for one request per blob.
func removeAll(t testing.TB, s server, path string) {
	ctx := context.Background()
	cfg, err := parseSettings(s.settings(path))
	var st *Store
	if err == nil {
		st, err = newStore(cfg)
	}
	if err != nil {
		t.Logf("clean-up of %s: %v", path, err)
		return
	}
	defer st.Close()
	cc := st.cc
	var names []string
	err = st.List(ctx, "", "", func(info sdk.ObjectInfo) error {
		names = append(names, path+"/"+info.Key)
		return nil
	})
	for len(names) > 0 && err == nil {
		n := min(len(names), 256)
		var bb *container.BatchBuilder
		if bb, err = cc.NewBatchBuilder(); err != nil {
			break
		}
		for _, name := range names[:n] {
			if err = bb.Delete(name, nil); err != nil {
				break
			}
		}
		if err == nil {
			_, err = cc.SubmitBatch(ctx, bb, nil)
		}
		names = names[n:]
	}
	if err != nil {
		t.Logf("clean-up of %s: %v", path, err)
	}
}
