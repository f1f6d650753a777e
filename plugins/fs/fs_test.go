package fs_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sqlitereplicator/replicator/conformance"
	"github.com/sqlitereplicator/replicator/plugins/fs"
	"github.com/sqlitereplicator/replicator/sdk"
	"github.com/sqlitereplicator/replicator/sdk/plugintest"
)

func TestMain(m *testing.M) {
	plugintest.ServeIfChild("fs", fs.Open)
	os.Exit(m.Run())
}

// TestConformance runs the storage contract suite against the fs backend
// through the plugin process, exactly as replicator runs it.
func TestConformance(t *testing.T) {
	p := plugintest.Launch(t, "fs")
	conformance.RunStorageTests(t, conformance.HarnessFunc(func(ctx context.Context, t *testing.T) (sdk.Storage, error) {
		return p.Open(ctx, map[string]string{"path": t.TempDir()})
	}))
}

func TestSettings(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		settings map[string]string
		want     string
	}{
		{"missing path", map[string]string{}, `setting "path" is required`},
		{"unknown setting", map[string]string{"path": t.TempDir(), "bucket": "x"}, `unknown setting "bucket"`},
		{"path is a file", map[string]string{"path": file}, "not a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := fs.Open(context.Background(), tc.settings)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open(%v) = %v, want an error containing %q", tc.settings, err, tc.want)
			}
		})
	}
}

// TestKeysStayInsideRoot checks that no key reaches outside the root, even
// through a symlink-free path trick, and that the reserved directory is
// refused.
func TestKeysStayInsideRoot(t *testing.T) {
	root := t.TempDir()
	st, err := fs.New(filepath.Join(root, "store"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, key := range []string{"../outside", "/etc/passwd", "a/../../outside", "a\\..\\b", "a\x00b", ".replicator-tmp/x"} {
		if _, err := st.Put(ctx, key, strings.NewReader("x"), sdk.PutOptions{}); !errors.Is(err, sdk.ErrInvalidArgument) {
			t.Errorf("Put(%q) = %v, want invalid argument", key, err)
		}
	}
	for _, prefix := range []string{"../", "..", "/etc/", "a/../../"} {
		err := st.List(ctx, prefix, "", func(oi sdk.ObjectInfo) error {
			t.Errorf("List(%q) returned %s", prefix, oi.Key)
			return nil
		})
		if !errors.Is(err, sdk.ErrInvalidArgument) {
			t.Errorf("List(%q) = %v, want invalid argument", prefix, err)
		}
	}
	entries, _ := os.ReadDir(root)
	for _, e := range entries {
		if e.Name() != "store" {
			t.Fatalf("a rejected put created %s outside the store", e.Name())
		}
	}
}

// TestDeletePrunesDirectories checks that deleting the last object of a
// directory removes the directory and its empty parents.
func TestDeletePrunesDirectories(t *testing.T) {
	root := t.TempDir()
	st, err := fs.New(root)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := st.Put(ctx, "a/b/c/obj", strings.NewReader("x"), sdk.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(ctx, "a/b/c/obj"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "a")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("directory a still exists after its last object was deleted (err %v)", err)
	}
}
