package fs_test

import (
	"context"
	"errors"
	"io"
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
	plugintest.ServeIfChild("fs-marked", openMarked)
	os.Exit(m.Run())
}

// markedStore is the fs store with a Get that streams marker bytes instead
// of the object's: a read that returns the object's bytes came from the
// file LocalPath named, not through the plugin's stream.
type markedStore struct{ *fs.Store }

func openMarked(_ context.Context, settings map[string]string) (sdk.Storage, error) {
	st, err := fs.New(settings["path"])
	return markedStore{st}, err
}

func (s markedStore) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	rc, err := s.Store.Get(ctx, key, offset, length)
	if err != nil {
		return nil, err
	}
	n, err := io.Copy(io.Discard, rc)
	rc.Close()
	return io.NopCloser(strings.NewReader(strings.Repeat("M", int(n)))), err
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

// TestLocalPath checks the file the store names for each kind of key: the
// object's own file for an object, NotFound where there is none, and never
// a file of the directory reserved for puts in progress.
func TestLocalPath(t *testing.T) {
	root := t.TempDir()
	st, err := fs.New(root)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for key, data := range map[string]string{"a/b/obj": "first", "top": "top object"} {
		if _, err := st.Put(ctx, key, strings.NewReader(data), sdk.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// Replace one object, through the lock file the if-match put takes.
	oi, err := st.Stat(ctx, "a/b/obj")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Put(ctx, "a/b/obj", strings.NewReader("second version"), sdk.PutOptions{IfMatch: oi.ETag}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		key  string
		want string // the file's content; "" when an error is wanted
		err  error
	}{
		{key: "a/b/obj", want: "second version"},
		{key: "top", want: "top object"},
		{key: "missing", err: sdk.ErrNotFound},
		{key: "a/b/obj/below", err: sdk.ErrNotFound},
		{key: "a/b", err: sdk.ErrNotFound}, // a directory: a prefix, not an object
		{key: ".replicator-tmp/lock", err: sdk.ErrInvalidArgument},
		{key: "../outside", err: sdk.ErrInvalidArgument},
	} {
		t.Run(tc.key, func(t *testing.T) {
			p, err := st.LocalPath(ctx, tc.key)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("LocalPath(%q) = %q, %v; want %v", tc.key, p, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !filepath.IsAbs(p) || !strings.HasPrefix(p, root+string(filepath.Separator)) {
				t.Errorf("LocalPath(%q) = %q, want an absolute path under %s", tc.key, p, root)
			}
			got, err := os.ReadFile(p)
			if err != nil || string(got) != tc.want {
				t.Errorf("file %s holds %q (%v), want %q", p, got, err, tc.want)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(root, ".replicator-tmp", "lock")); err != nil {
		t.Fatalf("the if-match put left no lock file, so the reserved-key case tested nothing: %v", err)
	}
}

// TestGetReadsLocalFile checks, through the plugin process, that Get
// reads the object's file on the host side, with the bytes and ranges of
// the contract: the plugin's own Get would stream marker bytes.
func TestGetReadsLocalFile(t *testing.T) {
	st := plugintest.Open(t, "fs-marked", map[string]string{"path": t.TempDir()})
	ctx := context.Background()
	data := strings.Repeat("0123456789", 100_000)
	if _, err := st.Put(ctx, "g/obj", strings.NewReader(data), sdk.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, r := range [][2]int64{{0, -1}, {12345, 300_000}, {int64(len(data)) - 3, 10}, {int64(len(data)) + 1, -1}} {
		rc, err := st.Get(ctx, "g/obj", r[0], r[1])
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		end := int64(len(data))
		if r[1] >= 0 {
			end = min(end, r[0]+r[1])
		}
		want := ""
		if r[0] < end {
			want = data[r[0]:end]
		}
		if string(got) != want {
			t.Errorf("Get(%d, %d) returned %d bytes (streamed markers: %v), want %d bytes of the file",
				r[0], r[1], len(got), strings.HasPrefix(string(got), "M"), len(want))
		}
	}
	if _, err := st.Get(ctx, "g/missing", 0, -1); !errors.Is(err, sdk.ErrNotFound) {
		t.Errorf("Get(missing) = %v, want not found", err)
	}
}
