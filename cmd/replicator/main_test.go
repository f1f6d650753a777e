package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// testBinEnv names the directory where TestMain installed the replicator
// executable and every first-party plugin executable, side by side.
const testBinEnv = "REPLICATOR_TEST_BIN_DIR"

// TestMain lets the test binary stand in for the replicator executable: the
// fs plugin, compiled in, is started by re-executing os.Executable() as
// "plugin serve fs", which under "go test" is this binary; "bench scale"
// re-executes it as the daemon ("replicate") and for "restore". The other
// first-party plugins are executables of their own: TestMain builds them,
// and the replicator executable, into one directory, as an installation
// has them, and puts it first on PATH, where this binary finds them.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && (os.Args[1] == "plugin" || os.Args[1] == "replicate" || os.Args[1] == "restore") {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	dir, err := installExecutables()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Setenv(testBinEnv, dir)
	os.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// installExecutables builds replicator and the first-party plugins into a
// new directory.
func installExecutables() (string, error) {
	dir, err := os.MkdirTemp("", "replicator-bin-")
	if err != nil {
		return "", err
	}
	args := []string{"build", "-o", dir + string(os.PathSeparator), "."}
	for _, n := range firstPartyNames() {
		args = append(args, "../replicator-"+n)
	}
	// Built as the README builds them: static, without cgo.
	cmd := exec.Command("go", args...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("build the executables: %v\n%s", err, out)
	}
	return dir, nil
}

// replicatorBin returns the replicator executable TestMain built, with the
// plugin executables beside it.
func replicatorBin(t *testing.T) string {
	t.Helper()
	dir := os.Getenv(testBinEnv)
	if dir == "" {
		t.Fatalf("%s is not set: TestMain did not build the executables", testBinEnv)
	}
	return filepath.Join(dir, "replicator")
}
