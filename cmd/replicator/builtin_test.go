package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sqlitereplicator/replicator/internal/install"
)

// TestCompiledIn checks that the plugins compiled into this executable are
// the ones install.LocatePlugin serves from it.
func TestCompiledIn(t *testing.T) {
	for _, name := range install.PluginNames() {
		if _, ok := compiled()[name]; ok != install.CompiledIn(name) {
			t.Errorf("%s: compiled in %v, install.CompiledIn %v", name, ok, install.CompiledIn(name))
		}
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
	if len(rows) != len(install.PluginNames()) {
		t.Fatalf("got %d plugins, want %d: %s", len(rows), len(install.PluginNames()), out)
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
	bin := copyExecutable(t, replicatorBin(t), dir)
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
