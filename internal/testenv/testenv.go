// Package testenv gives the tests of the commands what they need around
// them: the project's executables built side by side, as an installation
// has them, and the backends of the storage test servers that run.
package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// BinDirEnv names the directory where a TestMain installed the executables
// with Install.
const BinDirEnv = "REPLICATOR_TEST_BIN_DIR"

// Install builds every executable of the project (./cmd/...: replicator,
// the first-party plugins, replicator-conformance) into a new directory, as
// the README builds them (static, without cgo), and returns it.
func Install() (string, error) {
	dir, err := os.MkdirTemp("", "replicator-bin-")
	if err != nil {
		return "", err
	}
	cmd := exec.Command("go", "build", "-o", dir+string(os.PathSeparator), "github.com/sqlitereplicator/replicator/cmd/...")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("build the executables: %v\n%s", err, out)
	}
	return dir, nil
}

// Bin returns the path of executable name in the directory a TestMain
// installed with Install and named in BinDirEnv.
func Bin(t *testing.T, name string) string {
	t.Helper()
	dir := os.Getenv(BinDirEnv)
	if dir == "" {
		t.Fatalf("%s is not set: TestMain did not build the executables", BinDirEnv)
	}
	return filepath.Join(dir, name)
}

// Run is the body of a TestMain whose tests run the executables: it
// installs them (Install), names the directory in BinDirEnv and puts it
// first on PATH, runs the tests and returns their exit code.
func Run(m *testing.M) int {
	dir, err := Install()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	os.Setenv(BinDirEnv, dir)
	os.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return m.Run()
}
