package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestLocatePlugin(t *testing.T) {
	install := t.TempDir()
	self := filepath.Join(install, "replicator")
	onPath := t.TempDir()
	for _, p := range []string{
		self,
		filepath.Join(install, "replicator-s3"),
		filepath.Join(onPath, "replicator-gcs"),
		filepath.Join(onPath, "replicator-fs"),
	} {
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Not executable: never chosen.
	if err := os.WriteFile(filepath.Join(install, "replicator-sftp"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", onPath)
	for _, tc := range []struct {
		name     string
		wantPath string
		wantArgs []string
		missing  bool
	}{
		{name: "s3", wantPath: filepath.Join(install, "replicator-s3")},           // beside replicator
		{name: "fs", wantPath: self, wantArgs: []string{"plugin", "serve", "fs"}}, // compiled in, before PATH
		{name: "gcs", wantPath: filepath.Join(onPath, "replicator-gcs")},          // on PATH
		{name: "sftp", missing: true},                                             // beside it, but not executable
		{name: "azure", missing: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path, args, err := locatePlugin(self, tc.name)
			if tc.missing {
				if !errors.Is(err, errPluginMissing) || !strings.Contains(err.Error(), "replicator-"+tc.name) {
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
	if err := os.WriteFile(filepath.Join(install, "replicator-fs"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if path, args, err := locatePlugin(self, "fs"); err != nil || path != filepath.Join(install, "replicator-fs") || args != nil {
		t.Fatalf("fs: got %q %v %v; want the executable beside replicator", path, args, err)
	}
}

// TestInstalledPlugins runs the replicator executable as installed, each
// plugin executable beside it: every plugin starts, from there.
func TestInstalledPlugins(t *testing.T) {
	bin := replicatorBin(t)
	out, err := exec.Command(bin, "plugins", "-json").Output()
	if err != nil {
		t.Fatalf("replicator plugins: %v\n%s", err, out)
	}
	var rows []pluginStatus
	if err := json.Unmarshal(out, &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(firstPartyNames()) {
		t.Fatalf("got %d plugins, want %d: %s", len(rows), len(firstPartyNames()), out)
	}
	for _, r := range rows {
		if want := filepath.Join(filepath.Dir(bin), "replicator-"+r.Name); r.Path != want || r.Error != "" || len(r.Protocols) != 1 {
			t.Errorf("%s: path %q, protocols %v, error %q; want it started from %s", r.Name, r.Path, r.Protocols, r.Error, want)
		}
	}
}

// TestMissingPlugin runs replicator alone, no plugin executable beside it
// or on PATH: a local-directory replica still works (fs is compiled in),
// and an s3 one fails clearly, naming the executable to install.
func TestMissingPlugin(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "replicator")
	data, err := os.ReadFile(replicatorBin(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "PATH="+t.TempDir())
	run := func(args ...string) (string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		return stderr.String(), err
	}
	if stderr, err := run("generations", "file://"+filepath.Join(dir, "replica")); err != nil {
		t.Fatalf("generations of a file replica: %v\n%s", err, stderr)
	}
	stderr, err := run("restore", "-o", filepath.Join(dir, "out.db"), "s3://bucket/path?endpoint=http://127.0.0.1:1&region=x")
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() == 0 || !strings.Contains(stderr, "replicator-s3 is neither beside") {
		t.Fatalf("restore from s3 without its plugin: %v\n%s\nwant a non-zero exit naming replicator-s3", err, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "out.db")); !os.IsNotExist(err) {
		t.Errorf("out.db: %v; want no file", err)
	}
}
