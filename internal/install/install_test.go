package install

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestLocatePlugin(t *testing.T) {
	dir := t.TempDir()
	self := filepath.Join(dir, "replicator")
	onPath := t.TempDir()
	for _, p := range []string{
		self,
		filepath.Join(dir, "replicator-s3"),
		filepath.Join(onPath, "replicator-gcs"),
		filepath.Join(onPath, "replicator-fs"),
	} {
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Not executable: never chosen.
	if err := os.WriteFile(filepath.Join(dir, "replicator-sftp"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", onPath)
	for _, tc := range []struct {
		name     string
		wantPath string
		wantArgs []string
		missing  bool
	}{
		{name: "s3", wantPath: filepath.Join(dir, "replicator-s3")},               // beside replicator
		{name: "fs", wantPath: self, wantArgs: []string{"plugin", "serve", "fs"}}, // compiled in, before PATH
		{name: "gcs", wantPath: filepath.Join(onPath, "replicator-gcs")},          // on PATH
		{name: "sftp", missing: true},                                             // beside it, but not executable
		{name: "azure", missing: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path, args, err := LocatePlugin(self, tc.name)
			if tc.missing {
				if !errors.Is(err, ErrPluginMissing) || !strings.Contains(err.Error(), "replicator-"+tc.name) {
					t.Fatalf("got %q, %v, %v; want an error naming replicator-%s", path, args, err, tc.name)
				}
				return
			}
			if err != nil || path != tc.wantPath || !slices.Equal(args, tc.wantArgs) {
				t.Fatalf("got %q %v %v; want %q %v", path, args, err, tc.wantPath, tc.wantArgs)
			}
		})
	}
	// A plugin executable beside replicator wins over the compiled-in one.
	if err := os.WriteFile(filepath.Join(dir, "replicator-fs"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if path, args, err := LocatePlugin(self, "fs"); err != nil || path != filepath.Join(dir, "replicator-fs") || args != nil {
		t.Fatalf("fs: got %q %v %v; want the executable beside replicator", path, args, err)
	}
}

// TestFind checks how one executable finds another: beside it first, then
// on PATH, and an error naming both places when it is in neither.
func TestFind(t *testing.T) {
	dir, onPath := t.TempDir(), t.TempDir()
	self := filepath.Join(dir, "replicator")
	for _, p := range []string{self, filepath.Join(onPath, Conformance)} {
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", onPath)
	if p, err := Find(self, Conformance); err != nil || p != filepath.Join(onPath, Conformance) {
		t.Errorf("on PATH: got %q, %v", p, err)
	}
	beside := filepath.Join(dir, Conformance)
	if err := os.WriteFile(beside, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if p, err := Find(self, Conformance); err != nil || p != beside {
		t.Errorf("beside: got %q, %v; want %q", p, err, beside)
	}
	t.Setenv("PATH", t.TempDir())
	if p, err := Find(filepath.Join(t.TempDir(), "replicator"), Conformance); err == nil || !strings.Contains(err.Error(), Conformance+" is neither beside") {
		t.Errorf("missing: got %q, %v; want an error naming %s", p, err, Conformance)
	}
}
